"""The machine and the bench's processes under load: a quiet CPU to wait for, and each process's memory and CPU.

The processes themselves are started by scripts.processes.Fleet, as `make run` starts them.
"""

import threading

import psutil

from common.timers import wait_for


def wait_until_quiet(busy_percent=25, seconds=60):
    """Whether the machine's CPU (all cores, every process) fell below ``busy_percent`` for a second."""
    return wait_for(lambda: psutil.cpu_percent(interval=1) < busy_percent, seconds, interval=0)


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

    def watch(self, name, pid):
        """A process started after the sampler (an extra bridge replica)."""
        try:
            self.processes[name] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            pass

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
