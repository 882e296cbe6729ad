"""From a domain event envelope to a Kafka record: topic, key, value and headers (API.md "Kafka topics").

Anything that can never become a valid record raises ``PoisonEvent`` with a short ``reason`` (a fixed set, used as
a metrics label) and a human ``detail``; the relay dead-letters it instead of retrying it forever.
"""

import functools

from common.events import ENCODER, public_envelope

# event type family -> topic (without KAFKA_TOPIC_PREFIX); docs/architecture.md "Events"
TOPICS = {
    "order": "orders",
    "payment": "payments",
    "stock": "inventory",
    "product": "products",
    "category": "products",
    "notification": "notifications",
    "user": "accounts",
}
REQUIRED_FIELDS = ("event_id", "event_type", "aggregate_id")
HEADERS = ("event_id", "event_type", "correlation_id")


class PoisonEvent(Exception):
    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@functools.lru_cache(maxsize=1024)  # a handful of event types; an unmappable one raises and is not cached
def topic_for(event_type, prefix):
    family = event_type.split(".", 1)[0] if "." in event_type else None
    if family not in TOPICS:
        raise PoisonEvent("unmappable_event_type", f"no Kafka topic for event type {event_type!r}")
    return prefix + TOPICS[family]


def check_envelope(envelope):
    if not isinstance(envelope, dict):
        raise PoisonEvent("not_an_envelope", f"expected a JSON object, got {type(envelope).__name__}")
    for field in REQUIRED_FIELDS:
        value = envelope.get(field)
        if value is None or value == "" or isinstance(value, dict | list | bool):
            raise PoisonEvent("missing_field", f"envelope has no usable {field!r}")
    if not isinstance(envelope["event_type"], str):
        raise PoisonEvent("missing_field", "event_type is not a string")


def to_record(envelope, prefix, max_bytes):
    """Returns ``(topic, key, value, headers)`` for one envelope, or raises ``PoisonEvent``; the value is
    ``common.events.public_envelope`` (webhook bodies are the same JSON)."""
    check_envelope(envelope)
    topic = topic_for(envelope["event_type"], prefix)
    envelope = public_envelope(envelope)
    try:
        value = ENCODER.encode(envelope).encode()
    except (TypeError, ValueError) as exc:
        raise PoisonEvent("not_serialisable", str(exc)) from None
    key = envelope["aggregate_id"].encode()
    headers = [(name, str(envelope.get(name) or "").encode()) for name in HEADERS]
    size = len(value) + len(key) + sum(len(name) + len(data) for name, data in headers)
    if size > max_bytes:
        raise PoisonEvent("too_large", f"record of {size} bytes exceeds the limit of {max_bytes}")
    return topic, key, value, headers
