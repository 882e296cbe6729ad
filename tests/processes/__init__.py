"""Real ``nameko run`` processes of small test services, for the tests of what a process does as a whole (its
probes, its shutdown on SIGTERM)."""

import os

import yaml

from scripts.processes import ROOT, Fleet
from scripts.tansu import free_port


class Process:
    """``nameko run --config <tmp>/<name>.yml <module>``: ``settings`` become its config file; its log is
    ``<tmp>/log/<name>.log``; ``metrics_port`` is its ``METRICS_PORT`` (where it answers its probes)."""

    def __init__(self, tmp_path, name, module, settings):
        self.name, self.module = name, module
        self.metrics_port = free_port()
        self.config_path = tmp_path / f"{name}.yml"
        self.config_path.write_text(yaml.safe_dump({"serializer": "json", **settings,
                                                    "METRICS_PORT": self.metrics_port}))
        self.fleet = Fleet(tmp_path / "log", {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)})
        self.child = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, wait_for=(200,)):
        """Start it (again, after it exited) and wait until ``/health/ready`` answers one of ``wait_for``."""
        self.fleet.children = [(name, child) for name, child in self.fleet.children if child.poll() is None]
        self.child = self.fleet.nameko(self.name, self.module, self.config_path)
        self.fleet.wait_for_http(f"{self.url}/health", timeout=60)
        if wait_for:
            self.fleet.wait_for_http(f"{self.url}/health/ready", timeout=60, accept=wait_for)
        return self

    def log(self):
        return self.fleet.log_path(self.name).read_text()

    def stop(self):
        self.fleet.stop()
