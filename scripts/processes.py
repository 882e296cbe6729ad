"""The processes `make run` and the bench start: each in its own session, logging to ``<log_dir>/<name>.log``."""

import logging
import math
import subprocess
import sys
import time
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, Counter

from common.timers import wait_for

ROOT = Path(__file__).resolve().parent.parent
NAMEKO = str(Path(sys.executable).parent / "nameko")


class StartFailed(RuntimeError):
    """What we started did not come up: a child stopped, or it did not answer in time."""


class RestartPolicy:
    """Exponential backoff between restarts of one process: ``first`` s, doubling up to ``longest`` s; a process
    that stayed up ``stable_after`` s starts again from attempt 1."""

    def __init__(self, first=1.0, longest=30.0, stable_after=60.0):
        self.first, self.longest, self.stable_after = first, longest, stable_after

    def delay(self, attempt):
        return min(self.longest, self.first * 2 ** (attempt - 1))


class Fleet:
    """Children of this process; ``stop()`` ends every one it started or adopted."""

    def __init__(self, log_dir, env, restart=None, registry=None):
        """``restart``: a ``RestartPolicy`` to restart crashed children with (``make run``); None (the bench):
        a crashed child is reported, never restarted."""
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.children = []
        self.restart = restart
        self.specs = {}  # name -> (argv, env) of what start() launched: what a restart launches again
        self.attempts = {}
        self.started_at = {}
        self.due = {}  # name -> monotonic time of its pending restart
        self.registry = registry or CollectorRegistry()
        self.restarts = Counter("pos_process_restarts_total", "Crashed processes restarted by `make run`",
                                ["process"], registry=self.registry)
        self.log = _supervisor_log(self.log_dir / "supervisor.log")

    def start(self, name, argv, extra_env=None):
        env = {**self.env, **(extra_env or {})}
        self.specs[name] = (argv, env)
        return self.adopt(name, self._launch(name, argv, env))

    def _launch(self, name, argv, env):
        with open(self.log_path(name), "ab") as log:
            child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.started_at[name] = time.monotonic()
        return child

    def nameko(self, name, service, config_path, extra_env=None):
        return self.start(name, [NAMEKO, "run", "--config", str(config_path), service],
                          {"SERVICE_NAME": name, **(extra_env or {})})

    def adopt(self, name, child):
        """Stop ``child`` (a Popen started elsewhere, e.g. tansu) with the rest."""
        self.children.append((name, child))
        return child

    def log_path(self, name):
        return self.log_dir / f"{name}.log"

    def check(self):
        """``(name, exit code)`` of the first child that exited, else None."""
        for name, child in self.children:
            if child.poll() is not None:
                return name, child.returncode
        return None

    def pids(self):
        return {name: child.pid for name, child in self.children if child.poll() is None}

    def wait_for_http(self, url, timeout=90, accept=(200,)):
        """Wait until ``url`` answers one of ``accept``; ``StartFailed`` as soon as a child stops, or after
        ``timeout`` seconds."""
        if not wait_for(lambda: self._answers(url, accept), timeout, interval=0.3):
            raise StartFailed(f"{url} did not answer within {timeout}s (logs in {self.log_dir})")

    def wait_for_exit(self, interval=1.0):
        """Block until a child exits; its ``(name, exit code)``. With a restart policy, crashed children that
        ``start()`` launched are restarted instead, and this returns only when an adopted child (one it cannot
        launch again, e.g. tansu) exits."""
        if self.restart is None:
            return wait_for(self.check, timeout=math.inf, interval=interval)
        return wait_for(self.supervise, timeout=math.inf, interval=interval)

    def supervise(self):
        """One round: schedule a restart for each crashed child, launch those that are due; ``(name, code)`` of an
        exited child that cannot be restarted, else None."""
        now = time.monotonic()
        for index, (name, child) in enumerate(self.children):
            if child.poll() is None:
                continue
            if name not in self.specs:
                return name, child.returncode
            if name not in self.due:
                self._schedule(name, child.returncode, now)
            elif now >= self.due[name]:
                del self.due[name]
                self.children[index] = (name, self._launch(name, *self.specs[name]))
        return None

    def _schedule(self, name, code, now):
        uptime = now - self.started_at.get(name, now)
        attempt = 1 if uptime >= self.restart.stable_after else self.attempts.get(name, 0) + 1
        self.attempts[name] = attempt
        delay = self.restart.delay(attempt)
        self.due[name] = now + delay
        self.restarts.labels(name).inc()
        self.log.warning("%s exited with code %s after %.1fs; restart attempt %d in %.1fs (log: %s)",
                         name, code, uptime, attempt, delay, self.log_path(name))

    def stop(self, timeout=15):
        """SIGTERM to every child (the last started first), SIGKILL to those still there after ``timeout``."""
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + timeout
        for _name, child in self.children:
            stop_process(child, max(0.1, deadline - time.monotonic()), terminate=False)
        self.children = []
        self.due = {}

    def _answers(self, url, accept):
        failed = self.check()
        if failed:
            raise StartFailed(f"{failed[0]} exited with code {failed[1]}: see {self.log_path(failed[0])}")
        try:
            return requests.get(url, timeout=2).status_code in accept
        except requests.RequestException:
            return False


def _supervisor_log(path):
    logger = logging.getLogger(f"pos.supervisor.{path}")
    if not logger.handlers:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.addHandler(logging.StreamHandler(sys.stdout))
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def stop_process(child, timeout=15, terminate=True):
    """End a ``Popen``: SIGTERM (unless already sent), then SIGKILL if it is still there after ``timeout``."""
    if terminate and child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
