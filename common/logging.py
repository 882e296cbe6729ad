"""JSON log lines, one object a line, that carry the correlation id of the request being served.

``nameko run --config config/<env>.yml`` applies the config's ``LOGGING`` section: every record goes through
``WorkerContextFilter`` (service, correlation id, entrypoint of the worker that logged it) and ``JsonFormatter``.
A service declares ``log_context = LogContext()`` (``common.health.Operational`` does it for you) so the filter
knows which worker a log call belongs to. The correlation id is the gateway's ``X-Request-ID``; Nameko carries it
through RPC and event headers, so ``grep <id> var/log/*.log`` follows one request through every service.
"""

import contextvars
import logging
import os
import time
from datetime import UTC, datetime

from nameko.extensions import DependencyProvider
from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from common.correlation import CORRELATION_KEY

# Each Nameko worker runs in its own greenlet, and each greenlet has its own contextvars context.
_current_worker = contextvars.ContextVar("pos_current_worker", default=None)
_process_services = []

WORKER_FIELDS = ("service", "correlation_id", "request_id", "trace_id", "span_id", "entrypoint")


def current_worker():
    return _current_worker.get()


def process_service_name():
    return os.environ.get("SERVICE_NAME") or (_process_services[0] if _process_services else "-")


def annotate(record):
    """Set the worker fields on ``record`` (once): from the worker that logs it, else the process."""
    if getattr(record, "_pos_annotated", False):
        return record
    worker_ctx = current_worker()
    if worker_ctx is not None:
        correlation_id = worker_ctx.context_data.get(CORRELATION_KEY)
        record.service = worker_ctx.service_name
        record.entrypoint = worker_ctx.entrypoint.method_name
    else:
        correlation_id = None
        record.service = process_service_name()
        record.entrypoint = None
    record.correlation_id = correlation_id
    record.request_id = correlation_id
    span = trace.get_current_span().get_span_context()  # common.tracing's span of the worker, or the call it makes
    record.trace_id = trace.format_trace_id(span.trace_id) if span.is_valid else None
    record.span_id = trace.format_span_id(span.span_id) if span.is_valid else None
    record._pos_annotated = True
    return record


class WorkerContextFilter(logging.Filter):
    """Handler filter: adds the worker fields so any formatter (JSON or text) can use them."""

    def filter(self, record):
        annotate(record)
        return True


class JsonFormatter(_JsonFormatter):
    """``{timestamp, level, service, logger, message, correlation_id, request_id, trace_id, span_id, entrypoint,
    ...extra}`` (``trace_id``/``span_id`` null outside a trace)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "_pos_annotated", *WORKER_FIELDS])
        super().__init__(["levelname", *WORKER_FIELDS, "name", "message"], *args, **kwargs)

    def add_fields(self, log_data, record, message_dict):
        annotate(record)
        log_data["timestamp"] = rfc3339_millis(record.created)
        super().add_fields(log_data, record, message_dict)
        if log_data.get("entrypoint") is None:
            log_data.pop("entrypoint", None)


def rfc3339_millis(created):
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


worker_log = logging.getLogger("pos.worker")


class LogContext(DependencyProvider):
    """Binds the running worker to its greenlet so log records know their service and correlation id."""

    def setup(self):
        self.started_at = {}
        if self.container.service_name not in _process_services:
            _process_services.append(self.container.service_name)

    def worker_setup(self, worker_ctx):
        _current_worker.set(worker_ctx)
        self.started_at[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        # One line per handled call, so a request id can be followed through every service it touched.
        started = self.started_at.pop(worker_ctx, None)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
        outcome = type(exc_info[1]).__name__ if exc_info else "ok"
        worker_log.info("handled %s.%s: %s in %s ms", self.container.service_name,
                        worker_ctx.entrypoint.method_name, outcome, elapsed_ms,
                        extra={"outcome": outcome, "duration_ms": elapsed_ms})

    def worker_teardown(self, worker_ctx):
        _current_worker.set(None)

    def get_dependency(self, worker_ctx):
        return worker_ctx.context_data.get(CORRELATION_KEY)


def logging_config(level="INFO", fmt="json"):
    """The dictConfig that config/*.yml spells out under ``LOGGING`` (for scripts and tests)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"worker": {"()": "common.logging.WorkerContextFilter"}},
        "formatters": {
            "json": {"()": "common.logging.JsonFormatter"},
            "text": {"format": TEXT_FORMAT},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                 "formatter": fmt, "filters": ["worker"]}},
        "root": {"level": level, "handlers": ["console"]},
    }


TEXT_FORMAT = "%(asctime)s %(levelname)s %(service)s [%(correlation_id)s] %(name)s: %(message)s"
