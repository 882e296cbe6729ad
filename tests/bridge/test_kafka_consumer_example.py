"""The consumer example of docs/kafka.md (scripts/kafka_consumer.py) sees relayed events live, repeats dropped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nameko import config

from bridge.kafka_relay import KafkaBridge
from tests.bridge.conftest import envelope
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def consumer_output(bridge_config, tmp_path):
    output = tmp_path / "consumer.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.kafka_consumer", "--from-beginning", "orders", "payments"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": config["KAFKA_BOOTSTRAP_SERVERS"],
                 "KAFKA_TOPIC_PREFIX": config["KAFKA_TOPIC_PREFIX"]})
    yield output
    process.terminate()
    process.wait(10)


def printed_events(output):
    return [json.loads(line) for line in output.read_text().splitlines() if line.startswith("{")]


def test_the_example_consumer_prints_each_event_once_as_it_arrives(
        consumer_output, container_factory, publish_events):
    container_factory(KafkaBridge).start()
    wait_until(lambda: "listening on" in consumer_output.read_text(), message="the consumer to start")
    created = envelope("order.created", 42, {"id": 42, "status": "PENDING_PAYMENT"}, "orders", "req-42")
    authorized = envelope("payment.authorized", 42, {"order_id": 42, "amount": "19.99"}, "payments", "req-42")
    paid = envelope("order.paid", 42, {"id": 42, "status": "PAID"}, "orders", "req-42")
    shipped = envelope("order.status_changed", 42, {"id": 42, "status": "SHIPPED"}, "orders", "req-42")
    publish_events([created, authorized, paid, created, shipped])  # the second `created` is a repeat

    # `shipped` follows the repeat in the same partition: once it is printed, the repeat has been dealt with.
    # `authorized` is on another topic, with no order relative to the others: it is waited for on its own.
    last = {shipped["event_id"], authorized["event_id"]}
    events = wait_until(lambda: (lambda e: e if last <= {x["event_id"] for x in e} else None)(
        printed_events(consumer_output)), timeout=30, message="the last event of each topic printed")
    by_topic = {}
    for event in events:
        by_topic.setdefault(event["topic"], []).append(event["event_type"])
    prefix = config["KAFKA_TOPIC_PREFIX"]
    assert by_topic == {prefix + "orders": ["order.created", "order.paid", "order.status_changed"],
                        prefix + "payments": ["payment.authorized"]}
    assert all(e["key"] == "42" and e["correlation_id"] == "req-42" for e in events)
