"""Prometheus metrics for every service: entrypoints from one ``metrics = Metrics()`` declaration, plus the
instruments the other providers use for their own figures.

- entrypoint calls, latency and errors per service, entrypoint and kind (rpc, event, http, timer); an HTTP call's
  outcome is the status the gateway answered (its worker result is the response);
- database statement timings: ``common.db.Database`` calls ``time_statements`` on its engines, and counts each
  read-only worker's reads by target (``pos_db_reads_total{service,target}``: ``primary`` or a replica's host:port);
- cache hits and misses and the outbox backlog: ``common.cache.Cache`` and ``common.outbox.Outbox`` each register a
  ``LiveCollector`` while their container runs, read when scraped;
- domain events published, by source and type (orders by status, payments by outcome): ``count_domain_event``,
  called by ``common.outbox`` and by code that dispatches without it.

Each service process exposes the registry on ``METRICS_PORT`` (if set; ``METRICS_ADDR``, default 127.0.0.1), beside
its probes (``common.probes``); the gateway also serves it at ``GET /metrics``.
"""

import time

from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from sqlalchemy import event

from common import probes
from common.errors import DomainError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

ENTRYPOINT_CALLS = Counter(
    "pos_entrypoint_calls_total", "Entrypoint calls by outcome (success, domain_error, client_error, error)",
    ["service", "entrypoint", "kind", "outcome"],
)
ENTRYPOINT_LATENCY = Histogram(
    "pos_entrypoint_latency_seconds", "Entrypoint latency", ["service", "entrypoint", "kind"],
    buckets=LATENCY_BUCKETS,
)
ENTRYPOINT_ERRORS = Counter(
    "pos_entrypoint_errors_total", "Entrypoint failures by error type", ["service", "entrypoint", "error"],
)
DB_STATEMENT_LATENCY = Histogram(
    "pos_db_statement_seconds", "Database statement time", ["service", "statement"], buckets=LATENCY_BUCKETS,
)
DB_READS = Counter(
    "pos_db_reads_total", "Read-only workers' database sessions, by where they read (primary or a replica)",
    ["service", "target"],
)
DOMAIN_EVENTS = Counter(
    "pos_domain_events_total", "Domain events published, by source service and event type",
    ["source", "event_type"],
)


def count_read(service, target):
    """Called by ``common.db`` once per read-only worker that opens a session, with the target it chose."""
    DB_READS.labels(service, target).inc()


def count_domain_event(source, event_type):
    """Call where a domain event leaves a service (``common.outbox`` does, after the broker confirmed it)."""
    DOMAIN_EVENTS.labels(source, event_type).inc()


def entrypoint_kind(entrypoint):
    for cls, kind in ((Rpc, "rpc"), (EventHandler, "event"), (HttpRequestHandler, "http"), (Timer, "timer")):
        if isinstance(entrypoint, cls):
            return kind
    return type(entrypoint).__name__.lower()


def answered_status(result):
    """The HTTP status of a worker result: a response's, a ``(status, ...)`` tuple's, else ``None``."""
    status = getattr(result, "status_code", None)
    if status is None and isinstance(result, tuple) and result and isinstance(result[0], int):
        status = result[0]
    return status


def outcome_of(result, exc_info):
    status = answered_status(result)
    if status is not None:
        return "error" if status >= 500 else "client_error" if status >= 400 else "success"
    if exc_info is not None:
        return "domain_error" if isinstance(exc_info[1], DomainError) else "error"
    return "success"


def latest():
    """``(body, content_type)`` of the Prometheus text exposition of this process."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def time_statements(engine, service):
    """Observe every statement's time on ``engine`` (SQLAlchemy's cursor events)."""

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        if context is not None:
            context.pos_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        started = getattr(context, "pos_started", None)
        if started is not None:
            verb = (statement.split(None, 1) or ["OTHER"])[0].upper()
            DB_STATEMENT_LATENCY.labels(service, verb).observe(time.perf_counter() - started)


class LiveCollector:
    """Figures a provider reads when Prometheus scrapes; registered while the provider's container runs.

    ``collect`` yields metric families. ``describe`` names none: the containers of one process (the tests run
    many) yield the same families, and the registry refuses a second collector that describes a taken name.
    """

    def __init__(self, collect):
        self.collect = collect

    def describe(self):
        return []

    def register(self):
        REGISTRY.register(self)

    def unregister(self):
        try:
            REGISTRY.unregister(self)
        except KeyError:  # stop, then kill
            pass


class Metrics(DependencyProvider):
    def setup(self):
        self.started_at = {}
        probes.from_config()

    def worker_setup(self, worker_ctx):
        self.started_at[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started_at.pop(worker_ctx, None)
        service, entrypoint = self.container.service_name, worker_ctx.entrypoint.method_name
        kind = entrypoint_kind(worker_ctx.entrypoint)
        ENTRYPOINT_CALLS.labels(service, entrypoint, kind, outcome_of(result, exc_info)).inc()
        if exc_info is not None:
            ENTRYPOINT_ERRORS.labels(service, entrypoint, type(exc_info[1]).__name__).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(service, entrypoint, kind).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx):
        return self
