"""OpenTelemetry tracing: a span per worker, W3C trace context across AMQP, gRPC and Kafka, OTLP export.

``tracing = Tracing()`` (``common.health.Operational`` declares it for every service) starts one span per worker:
its parent is the ``traceparent`` the worker came with (an HTTP header at the gateway, else nameko's context data,
which travels in the AMQP headers of every RPC call and event), and it writes its own ``traceparent`` back into the
context data, so every call and event the worker makes continues the trace. The outgoing hops add their own spans
(``outgoing``): ``common.rpc`` per RPC call, the payments saga per gRPC call; the outbox stores the writer's context
with the row (``current_context``) and its relay publishes under it (``continued``), as the Kafka relay does for each
record it produces. SQL statements (``trace_engine``) and Redis commands (``trace_redis``) are spans of the
worker that runs them.

Configuration is the standard ``OTEL_*`` settings, from the Nameko config (``${OTEL_...:default}`` in
config/*.yml) or else the environment: no ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) means no
tracing at all, and every helper here costs one check. The OTel SDK has one tracer provider per process, so the
first container that starts names the process (``OTEL_SERVICE_NAME`` overrides). Spans are batched and exported
over OTLP/HTTP by a background thread: an exporter that cannot reach its endpoint drops spans, never a request.
"""

import json
import logging
import os
import threading
from contextlib import contextmanager

from nameko import config
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from common.correlation import CORRELATION_KEY

log = logging.getLogger(__name__)

TRACE_FIELDS = ("traceparent", "tracestate")
_process = {"configured": False, "enabled": False}
_configuring = threading.Lock()


def setting(name, default=None):
    value = config.get(name)
    if value in (None, ""):
        value = os.environ.get(name)
    return default if value in (None, "") else str(value)


def enabled():
    return _process["enabled"]


def configure(service_name):
    """Install the process's tracer provider once (or decide there is none); True when tracing is on."""
    with _configuring:  # nameko sets a container's extensions up in parallel greenlets
        if not _process["configured"]:
            _process["enabled"] = _install(service_name)
            _process["configured"] = True
        return _process["enabled"]


def _install(service_name):
    url = traces_url()
    if url is None or setting("OTEL_SDK_DISABLED", "false").lower() == "true":
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": setting("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource, sampler=EntrypointRoots(configured_sampler()))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    log.info("tracing %s to %s (sampler %s)", resource.attributes["service.name"], url,
             provider.sampler.get_description())
    return True


def traces_url():
    url = setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if url:
        return url
    base = setting("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None


def configured_sampler():
    """``OTEL_TRACES_SAMPLER`` (default ``parentbased_always_on``) with ``OTEL_TRACES_SAMPLER_ARG`` as its ratio."""
    from opentelemetry.sdk.trace import sampling

    name = setting("OTEL_TRACES_SAMPLER", "parentbased_always_on").lower()
    ratio = float(setting("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    samplers = {
        "always_on": lambda: sampling.ALWAYS_ON,
        "always_off": lambda: sampling.ALWAYS_OFF,
        "traceidratio": lambda: sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": lambda: sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        raise ValueError(f"OTEL_TRACES_SAMPLER={name!r} is not one of {', '.join(samplers)}")
    return samplers[name]()


class EntrypointRoots:
    """Only an entrypoint (a request, a message) starts a trace: a SQL statement, a Redis command or a timer tick
    outside any trace (the outbox relay polling its table, the reconciler's every tick) is not sampled."""

    ROOTLESS = (SpanKind.CLIENT, SpanKind.INTERNAL)

    def __init__(self, sampler):
        self.sampler = sampler

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None):
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind in self.ROOTLESS:
            return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self):
        return f"EntrypointRoots{{{self.sampler.get_description()}}}"


def tracer():
    return trace.get_tracer("pos")


def current_context():
    """The running span's ``{traceparent[, tracestate]}`` as JSON (stored with an outbox row), or None."""
    if not enabled():
        return None
    carrier = {}
    propagate.inject(carrier)
    return json.dumps(carrier) if carrier else None


def amqp_carrier(headers):
    """The trace context of an AMQP message nameko's way (``nameko.traceparent`` headers), or None."""
    carrier = {name: headers[f"nameko.{name}"] for name in TRACE_FIELDS if f"nameko.{name}" in (headers or {})}
    return carrier or None


@contextmanager
def outgoing(name, carrier, kind=SpanKind.CLIENT, attributes=None):
    """A span around a call to another process, its context written into ``carrier`` (headers, metadata)."""
    if not enabled():
        yield None
        return
    saved = {field: carrier[field] for field in TRACE_FIELDS if field in carrier}
    try:
        with tracer().start_as_current_span(name, kind=kind, attributes=attributes, record_exception=False,
                                            set_status_on_exception=False) as span:
            propagate.inject(carrier)
            try:
                yield span
            except Exception as exc:
                failed(span, exc)
                raise
    finally:  # a worker's context data: its later calls carry the worker's span again
        for field in TRACE_FIELDS:
            carrier.pop(field, None)
        carrier.update(saved)


@contextmanager
def continued(name, carrier, kind=SpanKind.PRODUCER, attributes=None):
    """A span in the trace ``carrier`` names (work done later on its behalf); yields the headers that continue it
    from this span. Without a carrier (or tracing) nothing is traced: no new trace starts here."""
    if not enabled() or not carrier:
        yield {}
        return
    span = tracer().start_span(name, context=propagate.extract(carrier), kind=kind, attributes=attributes)
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        headers = {}
        propagate.inject(headers)
        yield headers


def failed(span, exc):
    """The type only: an exception's message may quote what a caller sent (an email, an address)."""
    span.set_attribute("error.type", type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def trace_engine(engine, service_name):
    """SQL statements on ``engine`` become spans of the worker that runs them."""
    if not configure(service_name):
        return
    from opentelemetry import metrics
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    usage = metrics.get_meter("pos").create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer(), engine, usage)


def trace_redis(client, service_name):
    """Redis commands on ``client`` become spans of the worker that runs them."""
    if configure(service_name):
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor.instrument_client(client)
    return client


def unsampled_context():
    """A parent that samples nothing below it: neither the probe nor the calls it makes start traces."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    ids = RandomIdGenerator()
    return trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        ids.generate_trace_id(), ids.generate_span_id(), is_remote=False, trace_flags=trace.TraceFlags(0))))


def span_kind(entrypoint):
    if isinstance(entrypoint, (Rpc, HttpRequestHandler)):
        return SpanKind.SERVER
    if isinstance(entrypoint, Timer):
        return SpanKind.INTERNAL
    return SpanKind.CONSUMER


class Tracing(DependencyProvider):
    """A span per worker, continuing the trace the worker came with.

    An entrypoint may say more about its span: ``trace_name(worker_ctx)`` (the gateway's route template),
    ``trace_carrier(worker_ctx)`` (where its parent comes from; default the context data),
    ``trace_result(span, result)`` (e.g. the HTTP status), ``trace_quiet(worker_ctx)`` (true: the worker and what
    it causes are not sampled, for probes and scrapes); ``trace_workers = False`` opts out (the Kafka relay's
    workers carry many traces' events: it traces each record instead)."""

    def setup(self):
        self.active = configure(self.container.service_name)
        self.spans = {}
        self.tokens = {}

    def worker_setup(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        if not self.active or not getattr(entrypoint, "trace_workers", True):
            return
        name_of = getattr(entrypoint, "trace_name", None)
        carrier_of = getattr(entrypoint, "trace_carrier", None)
        carrier = carrier_of(worker_ctx) if carrier_of else worker_ctx.context_data
        quiet = getattr(entrypoint, "trace_quiet", None)
        span = tracer().start_span(
            name_of(worker_ctx) if name_of else f"{worker_ctx.service_name}.{entrypoint.method_name}",
            context=unsampled_context() if quiet and quiet(worker_ctx) else propagate.extract(carrier),
            kind=span_kind(entrypoint),
            attributes={"nameko.service": worker_ctx.service_name, "nameko.entrypoint": entrypoint.method_name,
                        "pos.request_id": worker_ctx.context_data.get(CORRELATION_KEY) or ""})
        token = context.attach(trace.set_span_in_context(span))
        propagate.inject(worker_ctx.context_data)  # every RPC call and event of this worker continues its span
        self.spans[worker_ctx] = span
        self.tokens[worker_ctx] = token

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        span = self.spans.pop(worker_ctx, None)
        if span is None:
            return
        describe = getattr(worker_ctx.entrypoint, "trace_result", None)
        if describe is not None:
            describe(span, result)
        if exc_info is not None:
            expected = getattr(worker_ctx.entrypoint, "expected_exceptions", ()) or ()
            if describe is None and not isinstance(exc_info[1], expected):
                failed(span, exc_info[1])
            else:
                span.set_attribute("error.type", type(exc_info[1]).__name__)
        span.end()

    def worker_teardown(self, worker_ctx):
        span = self.spans.pop(worker_ctx, None)
        if span is not None:  # the worker failed before it had a result
            span.end()
        token = self.tokens.pop(worker_ctx, None)
        if token is not None:
            context.detach(token)

