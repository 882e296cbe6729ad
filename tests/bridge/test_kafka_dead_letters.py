"""An event that can never reach Kafka goes to the dead-letter queue with its reason; the relay goes on."""

import json

import pytest
from kombu import Connection
from nameko import config
from nameko.standalone.events import get_event_exchange

from bridge.kafka_entrypoint import DEAD_LETTER_QUEUE
from bridge.kafka_relay import SOURCE_SERVICES, KafkaBridge
from bridge.kafka_shards import SHARD_EXCHANGE, SHARD_QUEUE
from tests.bridge.conftest import envelope
from tests.support import wait_until


def publish_raw(body, exchange, routing_key, content_type="application/json"):
    with Connection(config["AMQP_URI"]) as connection:
        producer = connection.Producer()
        producer.publish(body, exchange=exchange, routing_key=routing_key, content_type=content_type,
                         content_encoding="utf-8", serializer=None, retry=True)


def read_queue(name):
    with Connection(config["AMQP_URI"]) as connection:
        queue = connection.SimpleQueue(name)
        messages = []
        while True:
            try:
                message = queue.get(block=True, timeout=0.2)
            except queue.Empty:
                return messages
            messages.append(message.payload)
            message.ack()


@pytest.fixture
def small_records(bridge_config):
    with config.patch({"KAFKA_MAX_MESSAGE_BYTES": 50000, "KAFKA_PRODUCER_CONFIG": {"message.max.bytes": 20000}}):
        yield


def test_poison_events_are_dead_lettered_with_their_reason_while_the_next_events_flow(
        small_records, container_factory, publish_events, kafka_reader):
    container_factory(KafkaBridge).start()
    orders = get_event_exchange("orders")
    first = envelope("order.created", 1, {"id": 1, "status": "PENDING_PAYMENT"}, "orders")
    publish_events([first])

    publish_raw(b'{"event_id": "broken', orders, "order.created")
    publish_raw(b"\x80\x04K\x01.", orders, "order.created", content_type="application/x-python-serialize")
    publish_events([
        {**envelope("order.paid", 1, {}, "orders"), "event_type": None},
        envelope("widget.made", 1, {}, "orders"),
        envelope("order.paid", 1, {"id": 1, "status": "PAID", "blob": "x" * 30000}, "orders"),
        envelope("order.paid", 1, {"id": 1, "status": "PAID", "blob": "x" * 60000}, "orders"),
    ])
    publish_raw(json.dumps(["not", "an", "envelope"]).encode(), orders, "order.paid")
    after = [envelope("order.paid", 1, {"id": 1, "status": "PAID"}, "orders"),
             envelope("order.status_changed", 1, {"id": 1, "status": "SHIPPED"}, "orders")]
    publish_events(after)

    topic = config["KAFKA_TOPIC_PREFIX"] + "orders"
    records = kafka_reader(topic).wait_for(lambda rs: len(rs) >= 3, message="the good events")
    assert [r.value["event_id"] for r in records] == [e["event_id"] for e in [first, *after]]

    dead = []
    wait_until(lambda: dead.extend(read_queue(DEAD_LETTER_QUEUE)) or len(dead) >= 7, message="7 dead letters")
    assert sorted(d["reason"] for d in dead) == sorted([
        "undecodable", "undecodable", "missing_field", "unmappable_event_type", "rejected_by_kafka",
        "too_large", "not_an_envelope"])
    for letter in dead:
        assert letter["detail"] and letter["exchange"] == "orders.events" and letter["body"]
        assert letter["dead_lettered_at"].endswith("Z")
    assert any('"event_id": "broken' in d["body"] for d in dead)


def test_both_queues_are_durable_and_exist_as_soon_as_the_bridge_runs(bridge_config, container_factory, rabbit_manager):
    container_factory(KafkaBridge).start()

    vhost = config["AMQP_URI"].rsplit("/", 1)[1]
    for name in (SHARD_QUEUE.format(0), DEAD_LETTER_QUEUE):
        assert rabbit_manager.get_queue(vhost, name)["durable"] is True
    assert rabbit_manager.get_queue(vhost, SHARD_QUEUE.format(0))["arguments"] == {"x-single-active-consumer": True}
    assert SHARD_EXCHANGE in {b["source"] for b in rabbit_manager.get_queue_bindings(vhost, SHARD_QUEUE.format(0))}
    into_shards = rabbit_manager._get("exchanges", vhost, SHARD_EXCHANGE, "bindings", "destination")
    assert {(f"{s}.events", "#") for s in SOURCE_SERVICES} <= {(b["source"], b["routing_key"]) for b in into_shards}
