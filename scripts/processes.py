"""The processes `make run` and the bench start: each in its own session, logging to ``<log_dir>/<name>.log``."""

import math
import subprocess
import sys
import time
from pathlib import Path

import requests

from common.timers import wait_for

ROOT = Path(__file__).resolve().parent.parent
NAMEKO = str(Path(sys.executable).parent / "nameko")


class StartFailed(RuntimeError):
    """What we started did not come up: a child stopped, or it did not answer in time."""


class Fleet:
    """Children of this process; ``stop()`` ends every one it started or adopted."""

    def __init__(self, log_dir, env):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.children = []

    def start(self, name, argv, extra_env=None):
        with open(self.log_path(name), "ab") as log:
            child = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self.adopt(name, child)

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
        """Block until a child exits; its ``(name, exit code)``."""
        return wait_for(self.check, timeout=math.inf, interval=interval)

    def stop(self, timeout=15):
        """SIGTERM to every child (the last started first), SIGKILL to those still there after ``timeout``."""
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + timeout
        for _name, child in self.children:
            stop_process(child, max(0.1, deadline - time.monotonic()), terminate=False)
        self.children = []

    def _answers(self, url, accept):
        failed = self.check()
        if failed:
            raise StartFailed(f"{failed[0]} exited with code {failed[1]}: see {self.log_path(failed[0])}")
        try:
            return requests.get(url, timeout=2).status_code in accept
        except requests.RequestException:
            return False


def stop_process(child, timeout=15, terminate=True):
    """End a ``Popen``: SIGTERM (unless already sent), then SIGKILL if it is still there after ``timeout``."""
    if terminate and child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
