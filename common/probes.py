"""The process's own HTTP port (``METRICS_PORT``): Prometheus at ``/metrics``, liveness at ``/health``, readiness at
``/health/ready``; what Kubernetes probes and scrapes on every pod.

One server per port per process: the containers of one process (several services in one ``nameko run``, the tests)
share it, and it outlives each of them. Each container's ``common.health.Readiness`` attaches while it runs; the
process is ready when every attached container is (none attached: not ready, nothing there can work).

- ``/health``: 200 ``{"status": "UP"}`` whenever the server answers. It is a greenlet of the process's hub, like
  every worker: a hub that is stuck (a blocking call) cannot answer, and that is what liveness must catch.
- ``/health/ready``: 200 or 503 ``{"status": "UP"|"DOWN", "services": {name: {"status", "checks"}}}``, the
  checks of each attached container side by side (``common.health.Readiness.report``).
"""

import json
import logging
import threading

import eventlet
import eventlet.wsgi
from nameko import config
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

UP, DOWN = "UP", "DOWN"
LIVENESS, READINESS, METRICS = "/health", "/health/ready", "/metrics"  # the paths k8s/base probes and scrapes
SOCKET_TIMEOUT = 10  # a probe or a scrape that stops sending frees its connection

_servers = {}
_servers_lock = threading.Lock()


class ProbeServer:
    def __init__(self, port, addr):
        self.port, self.addr = port, addr
        self.attached = []  # the Readiness providers of the containers running in this process
        self.greenlet = None

    def start(self):
        sock = eventlet.listen((self.addr, self.port))
        self.greenlet = eventlet.spawn(eventlet.wsgi.server, sock, self.app, log_output=False,
                                       socket_timeout=SOCKET_TIMEOUT)
        log.info("metrics and probes on http://%s:%s (/metrics, /health, /health/ready)", self.addr, self.port)

    def attach(self, readiness):
        self.attached.append(readiness)

    def detach(self, readiness):
        if readiness in self.attached:
            self.attached.remove(readiness)

    def app(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == METRICS:
            return reply(start_response, 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        if path == LIVENESS:
            return reply_json(start_response, 200, {"status": UP})
        if path == READINESS:
            return reply_json(start_response, *self.readiness())
        return reply_json(start_response, 404, {"error": {"code": "not_found", "message": f"no route {path}"}})

    def readiness(self):
        attached = list(self.attached)
        pool = eventlet.GreenPool(max(1, len(attached)))
        reports = dict(pool.imap(lambda readiness: (readiness.service_name, readiness.report()), attached))
        ready = bool(reports) and all(report["status"] == UP for report in reports.values())
        return (200 if ready else 503), {"status": UP if ready else DOWN, "services": reports}


def reply(start_response, status, body, content_type):
    start_response(f"{status} {STATUS_TEXT[status]}", [("Content-Type", content_type),
                                                         ("Content-Length", str(len(body))),
                                                         ("Cache-Control", "no-store")])
    return [body]


def reply_json(start_response, status, document):
    return reply(start_response, status, json.dumps(document).encode(), "application/json")


STATUS_TEXT = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def serve(port, addr="127.0.0.1"):
    """The process's server on ``port``, started on first use; None if the port is taken by someone else."""
    port = int(port)
    with _servers_lock:
        if port not in _servers:
            server = ProbeServer(port, addr)
            try:
                server.start()
            except OSError:
                log.warning("metrics port %s is taken; no metrics or probes here", port)
                return None
            _servers[port] = server
        return _servers[port]


def from_config():
    """The server on ``METRICS_PORT`` (``METRICS_ADDR``, default 127.0.0.1); None without a port."""
    port = config.get("METRICS_PORT")
    return serve(port, str(config.get("METRICS_ADDR") or "127.0.0.1")) if port else None
