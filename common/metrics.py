"""Prometheus metrics for every service: entrypoint calls, latency and errors, per service and method.

Each service process exposes its registry on ``METRICS_PORT`` (if set); the gateway also serves ``/metrics``.
"""

import logging
import time

from nameko import config
from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

ENTRYPOINT_CALLS = Counter(
    "pos_entrypoint_calls_total", "Entrypoint calls", ["service", "entrypoint", "outcome"]
)
ENTRYPOINT_LATENCY = Histogram(
    "pos_entrypoint_latency_seconds", "Entrypoint latency", ["service", "entrypoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_exporter_started = set()


class Metrics(DependencyProvider):
    def setup(self):
        self.started_at = {}
        port = config.get("METRICS_PORT")
        if port and int(port) not in _exporter_started:
            try:
                start_http_server(int(port), addr=config.get("METRICS_ADDR", "127.0.0.1"))
                _exporter_started.add(int(port))
            except OSError:
                log.warning("metrics port %s is taken; not exporting", port)

    def worker_setup(self, worker_ctx):
        self.started_at[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started_at.pop(worker_ctx, None)
        service, entrypoint = self.container.service_name, worker_ctx.entrypoint.method_name
        outcome = "error" if exc_info else "success"
        ENTRYPOINT_CALLS.labels(service, entrypoint, outcome).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(service, entrypoint).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx):
        return self
