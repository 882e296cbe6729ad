"""common.tracing's pure parts: the sampler, the settings, the carriers and the trace fields of a log line. The
whole path (spans from every process, exported over OTLP) is tests/system/test_tracing.py."""

import io
import json
import logging

import pytest
from nameko import config
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from common import tracing
from common.logging import JsonFormatter, WorkerContextFilter

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def parent(sampled=True):
    context = trace.SpanContext(TRACE_ID, 0x00F067AA0BA902B7, is_remote=True,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else 0))
    return trace.set_span_in_context(trace.NonRecordingSpan(context))


@pytest.mark.parametrize(("kind", "decision"), [
    (SpanKind.SERVER, Decision.RECORD_AND_SAMPLE), (SpanKind.CONSUMER, Decision.RECORD_AND_SAMPLE),
    (SpanKind.PRODUCER, Decision.RECORD_AND_SAMPLE), (SpanKind.CLIENT, Decision.DROP),
    (SpanKind.INTERNAL, Decision.DROP),
])
def test_only_an_entrypoint_starts_a_trace(kind, decision):
    sampler = tracing.EntrypointRoots(ParentBased(ALWAYS_ON))
    assert sampler.should_sample(None, TRACE_ID, "x", kind).decision == decision


@pytest.mark.parametrize("kind", [SpanKind.CLIENT, SpanKind.INTERNAL])
def test_inside_a_trace_every_span_follows_its_parents_choice(kind):
    sampler = tracing.EntrypointRoots(ParentBased(ALWAYS_ON))
    assert sampler.should_sample(parent(True), TRACE_ID, "x", kind).decision == Decision.RECORD_AND_SAMPLE
    assert sampler.should_sample(parent(False), TRACE_ID, "x", kind).decision == Decision.DROP


def test_the_sampler_and_its_ratio_come_from_the_standard_settings():
    with config.patch({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}):
        sampler = tracing.configured_sampler()
    assert isinstance(sampler, ParentBased)
    assert "TraceIdRatioBased{0.25}" in sampler.get_description()
    with config.patch({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}):
        assert isinstance(tracing.configured_sampler(), TraceIdRatioBased)
    with config.patch({"OTEL_TRACES_SAMPLER": "sometimes"}), pytest.raises(ValueError, match="sometimes"):
        tracing.configured_sampler()


def test_the_endpoint_is_otlp_http_traces_path_or_none(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    with config.patch({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}):
        assert tracing.traces_url() is None  # dev's default: no tracing
    with config.patch({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/"}):
        assert tracing.traces_url() == "http://jaeger:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom")
    with config.patch({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}):
        assert tracing.traces_url() == "http://collector:4318/custom"


def test_the_trace_context_of_an_amqp_message_is_read_from_nameko_headers():
    headers = {"nameko.traceparent": "00-abc-def-01", "nameko.correlation_id": "r1", "event_id": "e"}
    assert tracing.amqp_carrier(headers) == {"traceparent": "00-abc-def-01"}
    assert tracing.amqp_carrier({"event_id": "e"}) is None
    assert tracing.amqp_carrier(None) is None


def test_with_tracing_off_the_hooks_change_nothing(monkeypatch):
    monkeypatch.setitem(tracing._process, "enabled", False)
    carrier = {"correlation_id": "r1"}
    with tracing.outgoing("orders.create_order", carrier) as span:
        assert span is None
    with tracing.continued("order.paid publish", {"traceparent": "00-x-y-01"}) as headers:
        assert headers == {}
    assert carrier == {"correlation_id": "r1"}
    assert tracing.current_context() is None


def test_a_log_line_carries_the_trace_and_span_ids_of_the_running_span():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(WorkerContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    tracer = TracerProvider().get_tracer("tests")  # a provider of its own: the process's global one stays unset
    try:
        logger.info("outside")
        with tracer.start_as_current_span("work") as span:
            logger.info("inside")
    finally:
        logger.removeHandler(handler)
    outside, inside = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert outside["trace_id"] is None and outside["span_id"] is None
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert inside["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert "request_id" in inside
