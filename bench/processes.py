"""Processes the bench starts (the system as `make run` starts it, and the floors), and their memory under load."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
NAMEKO = str(Path(sys.executable).parent / "nameko")


class Fleet:
    """Children started in their own session, logging to ``log_dir/<name>.log``; ``stop()`` ends them all."""

    def __init__(self, log_dir, env):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.children = []

    def start(self, name, argv, extra_env=None):
        log = open(self.log_dir / f"{name}.log", "ab")
        child = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.children.append((name, child))
        return child

    def nameko(self, name, service, config_path, extra_env=None):
        return self.start(name, [NAMEKO, "run", "--config", str(config_path), service],
                          {"SERVICE_NAME": name, **(extra_env or {})})

    def check(self):
        """``(name, exit code)`` of the first child that exited, else None (run_system's contract)."""
        for name, child in self.children:
            if child.poll() is not None:
                return name, child.returncode
        return None

    def pids(self):
        return {name: child.pid for name, child in self.children if child.poll() is None}

    def stop(self, timeout=15):
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + timeout
        for _name, child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children = []


def wait_for(predicate, seconds, interval=0.5):
    """Poll ``predicate`` until it is truthy or ``seconds`` have passed; returns its last value."""
    deadline = time.monotonic() + seconds
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def wait_until_quiet(busy_percent=25, seconds=60):
    """Whether the machine's CPU (all cores, every process) fell below ``busy_percent`` for a second."""
    return wait_for(lambda: psutil.cpu_percent(interval=1) < busy_percent, seconds, interval=0)


def wait_for_http(url, fleet, timeout=90, accept=(200,)):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        failed = fleet.check()
        if failed:
            raise RuntimeError(f"{failed[0]} exited with code {failed[1]}: see {fleet.log_dir}/{failed[0]}.log")
        try:
            if requests.get(url, timeout=2).status_code in accept:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout}s (logs in {fleet.log_dir})")


class MemorySampler:
    """Peak RSS (MB) and CPU seconds of each process, per phase, sampled twice a second in a thread."""

    def __init__(self, pids):
        self.processes = {}
        for name, pid in pids.items():
            try:
                self.processes[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass
        self.peaks = {}
        self.cpu = {}  # {phase: {process: [cpu seconds at the phase's first sample, at its last]}}
        self.phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._sample()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def switch(self, phase):
        """Start ``phase``: its CPU is counted from now (the previous phase's is closed by this sample)."""
        self._sample()
        self.phase = phase
        self._sample()

    def cpu_seconds(self):
        return {phase: {name: last - first for name, (first, last) in used.items()}
                for phase, used in self.cpu.items()}

    def _run(self):
        while not self._stop.wait(0.5):
            self._sample()

    def _sample(self):
        phase = self.peaks.setdefault(self.phase, {})
        cpu = self.cpu.setdefault(self.phase, {})
        for name, process in self.processes.items():
            try:
                rss = process.memory_info().rss / 2**20
                times = process.cpu_times()
            except psutil.Error:
                continue
            phase[name] = max(phase.get(name, 0.0), rss)
            used = times.user + times.system
            cpu.setdefault(name, [used, used])[1] = used

    def overall(self):
        peaks = {}
        for phase in self.peaks.values():
            for name, rss in phase.items():
                peaks[name] = max(peaks.get(name, 0.0), rss)
        return peaks
