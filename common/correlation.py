"""One id follows a request through HTTP, RPC, events and Kafka.

Nameko copies a worker's context data into the headers of every RPC call and event it makes, and back into the
context of the worker that handles them, so setting ``correlation_id`` once at the edge is enough.
"""

import re
import uuid

from nameko.extensions import DependencyProvider

CORRELATION_KEY = "correlation_id"
REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def acceptable_request_id(value):
    return bool(value) and bool(_ACCEPTABLE_ID.match(value))


def _from_http_request(worker_ctx):
    request = worker_ctx.args[0] if worker_ctx.args else None
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    candidate = headers.get(REQUEST_ID_HEADER)
    return candidate if acceptable_request_id(candidate) else None


def _from_event_envelope(worker_ctx):
    payload = worker_ctx.args[0] if worker_ctx.args else None
    if isinstance(payload, dict):
        return payload.get(CORRELATION_KEY)
    return None


class CorrelationId(DependencyProvider):
    """Injects the current correlation id, creating one where the call chain starts."""

    def worker_setup(self, worker_ctx):
        data = worker_ctx.context_data
        if not data.get(CORRELATION_KEY):
            data[CORRELATION_KEY] = (
                _from_http_request(worker_ctx)
                or _from_event_envelope(worker_ctx)
                or str(uuid.uuid4())
            )

    def get_dependency(self, worker_ctx):
        return CorrelationHandle(worker_ctx)


class CorrelationHandle:
    def __init__(self, worker_ctx):
        self.worker_ctx = worker_ctx

    @property
    def id(self):
        return self.worker_ctx.context_data.get(CORRELATION_KEY)

    def __str__(self):
        return self.id or ""
