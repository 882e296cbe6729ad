"""Prometheus metrics for every service, from one ``metrics = Metrics()`` declaration.

- entrypoint calls, latency and errors per service, entrypoint and kind (rpc, event, http, timer);
- database statement timings from SQLAlchemy engine events on the service's ``Database``;
- cache hits and misses (``common.cache`` keeps the counts) and the outbox backlog, read when scraped;
- domain events published, by source and type (orders by status, payments by outcome), from ``common.outbox``.

Each service process exposes the registry on ``METRICS_PORT`` (if set; ``METRICS_ADDR``, default 127.0.0.1);
the gateway also serves it at ``GET /metrics``.
"""

import logging
import threading
import time

import eventlet
from marshmallow import ValidationError
from nameko import config
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import event

from common.errors import DomainError

log = logging.getLogger(__name__)

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
DOMAIN_EVENTS = Counter(
    "pos_domain_events_total", "Domain events published, by source service and event type",
    ["source", "event_type"],
)

SCRAPE_TIMEOUT = 2.0

_exporters_started = set()
_exporters_lock = threading.Lock()
_live = []  # Metrics providers of running containers; read by the scrape-time collector


def count_domain_event(source, event_type):
    """Call where a domain event leaves a service (``common.outbox`` does, after the broker confirmed it)."""
    DOMAIN_EVENTS.labels(source, event_type).inc()


def entrypoint_kind(entrypoint):
    for cls, kind in ((Rpc, "rpc"), (EventHandler, "event"), (HttpRequestHandler, "http"), (Timer, "timer")):
        if isinstance(entrypoint, cls):
            return kind
    return type(entrypoint).__name__.lower()


def http_status_of(exc):
    """The status the gateway answers for an exception its handler raised (gateway/http.py maps them)."""
    if isinstance(exc, DomainError):
        return exc.status
    if isinstance(exc, ValidationError):
        return 422
    return getattr(exc, "code", None) if isinstance(getattr(exc, "code", None), int) else 500


def outcome_of(result, exc_info, kind="rpc"):
    if exc_info is not None:
        if kind == "http":
            return "client_error" if http_status_of(exc_info[1]) < 500 else "error"
        return "domain_error" if isinstance(exc_info[1], DomainError) else "error"
    status = getattr(result, "status_code", None)
    if status is None and isinstance(result, tuple) and result and isinstance(result[0], int):
        status = result[0]
    if status is not None and status >= 500:
        return "error"
    if status is not None and status >= 400:
        return "client_error"
    return "success"


def latest():
    """``(body, content_type)`` of the Prometheus text exposition of this process."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def start_exporter(port, addr):
    with _exporters_lock:
        if port in _exporters_started:
            return
        try:
            start_http_server(port, addr=addr)
            _exporters_started.add(port)
            log.info("metrics on http://%s:%s/metrics", addr, port)
        except OSError:
            log.warning("metrics port %s is taken; not exporting", port)


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


class Metrics(DependencyProvider):
    def setup(self):
        self.started_at = {}
        port = config.get("METRICS_PORT")
        if port:
            start_exporter(int(port), str(config.get("METRICS_ADDR") or "127.0.0.1"))

    def start(self):
        # after every provider's setup(): the Database's engine exists now
        for dependency in self.container.dependencies:
            engine = getattr(dependency, "engine", None)
            if engine is not None and hasattr(dependency, "Session"):
                time_statements(engine, self.container.service_name)
        _live.append(self)

    def stop(self):
        if self in _live:
            _live.remove(self)

    kill = stop

    def worker_setup(self, worker_ctx):
        self.started_at[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started_at.pop(worker_ctx, None)
        service, entrypoint = self.container.service_name, worker_ctx.entrypoint.method_name
        kind = entrypoint_kind(worker_ctx.entrypoint)
        outcome = outcome_of(result, exc_info, kind)
        ENTRYPOINT_CALLS.labels(service, entrypoint, kind, outcome).inc()
        if exc_info is not None:
            ENTRYPOINT_ERRORS.labels(service, entrypoint, type(exc_info[1]).__name__).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(service, entrypoint, kind).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx):
        return self

    def providers_of(self, cls):
        return [dep for dep in self.container.dependencies if isinstance(dep, cls)]


class LiveStateCollector:
    """Figures read when Prometheus scrapes: cache hits/misses and outbox backlog of the running services."""

    def collect(self):
        from common.cache import Cache
        from common.outbox import Outbox

        cache = CounterMetricFamily("pos_cache_requests", "Cache reads by result", labels=["service", "result"])
        backlog = GaugeMetricFamily("pos_outbox_backlog", "Outbox rows not yet published", labels=["service"])
        hits, unsent = {}, {}
        for provider in list(_live):
            service = provider.container.service_name
            for cache_provider in provider.providers_of(Cache):
                for result in ("hits", "misses"):
                    key = (service, result)
                    hits[key] = hits.get(key, 0) + cache_provider.stats.get(result, 0)
            for outbox in provider.providers_of(Outbox):
                count = read_backlog(outbox)
                if count is not None:
                    unsent[service] = unsent.get(service, 0) + count
        for (service, result), value in sorted(hits.items()):
            cache.add_metric([service, result], value)
        for service, value in sorted(unsent.items()):
            backlog.add_metric([service], value)
        yield cache
        yield backlog

    def describe(self):
        return []


def read_backlog(outbox):
    try:
        with eventlet.Timeout(SCRAPE_TIMEOUT):
            return outbox.backlog()
    except (Exception, eventlet.Timeout):
        log.warning("outbox backlog of %s unreadable", outbox.container.service_name, exc_info=True)
        return None


REGISTRY.register(LiveStateCollector())
