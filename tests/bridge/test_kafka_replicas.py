"""Three bridge replicas share the shards and keep each aggregate's events in order on Kafka through a SIGKILL."""

import os
import uuid

import eventlet
import pytest
from kombu import Connection
from nameko import config

from bridge.kafka_relay import SOURCE_SERVICES
from bridge.kafka_shards import declare_shards
from tests.bridge.conftest import envelope
from tests.bridge.test_kafka_faults import BridgeProcess, assert_complete_and_in_order, paced
from tests.replication import free_port

EVENTS = int(os.environ.get("POS_TEST_REPLICA_EVENTS", 20000))
AGGREGATES = 500

pytestmark = pytest.mark.slow


def aggregate_events(count):
    """Event ``i`` belongs to order ``i % AGGREGATES``; ``seq`` increases per order in publish order."""
    return [envelope("order.status_changed", i % AGGREGATES, {"id": i % AGGREGATES + 1, "status": "PAID", "seq": i},
                     "orders", event_id=str(uuid.uuid4())) for i in range(count)]


def held(replicas):
    return [int(replica.metric("pos_kafka_bridge_shards_held")) for replica in replicas]


def test_three_replicas_share_the_shards_and_one_killed_keeps_per_aggregate_order(
        bridge_config, tmp_path, publish_events, kafka_reader):
    with Connection(config["AMQP_URI"]) as connection:
        declare_shards(connection, SOURCE_SERVICES)
    replicas = []
    for n in range(3):
        (tmp_path / str(n)).mkdir()
        replicas.append(BridgeProcess(tmp_path / str(n), metrics_port=free_port()))
    reader = kafka_reader(config["KAFKA_TOPIC_PREFIX"] + "orders")
    try:
        for replica in replicas:
            replica.start()
        sent = aggregate_events(EVENTS)
        publisher = eventlet.spawn(paced, publish_events, sent, chunk=100)
        reader.wait_for(lambda rs: len(rs) >= EVENTS // 4, timeout=90, message="the replicas relaying the stream")
        shares = held(replicas)
        print(f"shards held mid-stream: {shares}")
        assert all(shares), f"every replica relays a share of the shards, not one holding all: {shares}"
        victim = max(replicas, key=lambda replica: replica.metric("pos_kafka_bridge_shards_held"))
        victim.kill()
        assert not publisher.dead, "the kill must land in the middle of the stream"
        publisher.wait()
        wanted = {e["event_id"] for e in sent}
        records = reader.wait_for(lambda rs: wanted <= {r.value["event_id"] for r in rs}, timeout=120,
                                  message=f"all {EVENTS} events")
        survivors = [replica for replica in replicas if replica is not victim]
        print(f"{len(records) - EVENTS} repeats; shards held by the survivors: {held(survivors)}")
        assert all(held(survivors)), "both survivors relay a share after the kill"
        assert_complete_and_in_order(records, sent)
    finally:
        for replica in replicas:
            replica.stop()
