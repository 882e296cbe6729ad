"""Envelope -> Kafka record: topic mapping, key, headers, and what counts as poison."""

import json

import pytest

from bridge.kafka_envelope import PoisonEvent, to_record
from schemas.events import event_types, load_schema
from tests.bridge.conftest import envelope

TOPIC_OF = {"order": "orders", "payment": "payments", "stock": "inventory", "product": "products",
            "category": "products", "notification": "notifications", "user": "accounts"}


@pytest.mark.parametrize("event_type", event_types())
def test_every_event_type_with_a_schema_maps_to_its_topic(event_type):
    source = load_schema(event_type)["properties"]["source"]["const"]
    topic, key, value, headers = to_record(envelope(event_type, 7, {}, source), "pos.", 10_000)
    assert topic == "pos." + TOPIC_OF[event_type.split(".")[0]]
    assert key == b"7" and json.loads(value)["event_type"] == event_type


def test_the_record_carries_the_envelope_and_its_headers():
    event = envelope("order.paid", 12, {"id": 12, "status": "PAID"}, "orders", correlation_id="req-1")
    topic, key, value, headers = to_record(event, "x.", 10_000)
    assert (topic, key, json.loads(value)) == ("x.orders", b"12", event)
    assert headers == [("event_id", event["event_id"].encode()), ("event_type", b"order.paid"),
                       ("correlation_id", b"req-1")]


def test_an_event_without_correlation_id_gets_its_event_id_so_repeats_stay_identical():
    event = {**envelope("stock.low", 3, {}, "inventory"), "correlation_id": None}
    first, again = to_record(event, "pos.", 10_000), to_record(dict(event), "pos.", 10_000)
    assert json.loads(first[2])["correlation_id"] == event["event_id"]
    assert first == again


def test_an_integer_aggregate_id_becomes_a_string_key():
    event = {**envelope("order.paid", 0, {}, "orders"), "aggregate_id": 5}
    _, key, value, _ = to_record(event, "pos.", 10_000)
    assert key == b"5" and json.loads(value)["aggregate_id"] == "5"


@pytest.mark.parametrize("body, reason", [
    (["not", "a", "dict"], "not_an_envelope"),
    ("order.paid", "not_an_envelope"),
    ({**envelope("order.paid", 1, {}, "orders"), "event_type": None}, "missing_field"),
    ({**envelope("order.paid", 1, {}, "orders"), "event_type": 3}, "missing_field"),
    ({**envelope("order.paid", 1, {}, "orders"), "event_id": ""}, "missing_field"),
    ({**envelope("order.paid", 1, {}, "orders"), "aggregate_id": None}, "missing_field"),
    (envelope("widget.made", 1, {}, "orders"), "unmappable_event_type"),
    (envelope("orders", 1, {}, "orders"), "unmappable_event_type"),
    (envelope("order.paid", 1, {"total": float("nan")}, "orders"), "not_serialisable"),
    (envelope("order.paid", 1, {"when": object()}, "orders"), "not_serialisable"),
    (envelope("order.paid", 1, {"blob": "x" * 2000}, "orders"), "too_large"),
])
def test_poison(body, reason):
    with pytest.raises(PoisonEvent) as caught:
        to_record(body, "pos.", 1000)
    assert caught.value.reason == reason and caught.value.detail


def test_the_payment_token_never_leaves_for_kafka():
    event = envelope("order.created", 4, {"id": 4, "status": "PENDING_PAYMENT", "payment_token": "tok_visa"}, "orders")
    _, _, value, _ = to_record(event, "pos.", 10_000)
    assert json.loads(value)["data"] == {"id": 4, "status": "PENDING_PAYMENT"}
    assert event["data"]["payment_token"] == "tok_visa"  # the AMQP envelope itself is untouched


def test_the_value_is_compact_json_as_every_earlier_record_was_so_repeats_stay_byte_identical():
    event = envelope("order.paid", 12, {"id": 12, "status": "PAID", "total": "19.99", "note": "é"}, "orders")
    _, _, value, _ = to_record(event, "pos.", 10_000)
    assert value == json.dumps(event, allow_nan=False, separators=(",", ":")).encode()
