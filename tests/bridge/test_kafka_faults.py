"""Nothing is lost across a bridge crash (SIGKILL) or a Kafka outage; repeats are allowed, losses are not."""

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import eventlet
import pytest
import requests
import yaml
from kombu import Connection
from nameko import config

from bridge.kafka_entrypoint import DEAD_LETTER_QUEUE
from bridge.kafka_metrics import PRODUCER_RESTARTS
from bridge.kafka_relay import SOURCE_SERVICES, KafkaBridge
from bridge.kafka_shards import declare_shards
from tests.bridge.conftest import envelope
from tests.bridge.test_kafka_dead_letters import read_queue

ROOT = Path(__file__).resolve().parents[2]
AGGREGATES = 20

pytestmark = pytest.mark.slow


def order_events(start, count):
    """Event ``i`` belongs to order ``i % AGGREGATES`` and carries its sequence number."""
    return [envelope("order.status_changed", i % AGGREGATES, {"id": i % AGGREGATES + 1, "status": "PAID", "seq": i},
                     "orders", correlation_id=f"req-{i}") for i in range(start, start + count)]


def assert_complete_and_in_order(records, sent):
    """Every event is there; per order, first sightings keep the order they were published in."""
    seen = {r.value["event_id"] for r in records}
    missing = [e["event_id"] for e in sent if e["event_id"] not in seen]
    assert not missing, f"{len(missing)} of {len(sent)} events never reached Kafka"
    first_seen = defaultdict(list)
    firsts = set()
    for record in records:
        if record.value["event_id"] not in firsts:
            firsts.add(record.value["event_id"])
            first_seen[record.key].append(record.value["data"]["seq"])
    for key, sequence in first_seen.items():
        assert sequence == sorted(sequence), f"order {key}: events out of order"


class BridgeProcess:
    """``nameko run bridge.kafka_relay`` as a child process with the test's broker and vhost."""

    def __init__(self, tmp_path, metrics_port=None):
        self.config_path = tmp_path / "bridge.yml"
        self.metrics_port = metrics_port
        self.config_path.write_text(yaml.safe_dump({
            "AMQP_URI": config["AMQP_URI"], "serializer": "json", "METRICS_PORT": metrics_port,
            "KAFKA_BOOTSTRAP_SERVERS": config["KAFKA_BOOTSTRAP_SERVERS"],
            "KAFKA_TOPIC_PREFIX": config["KAFKA_TOPIC_PREFIX"],
            "KAFKA_MESSAGE_TIMEOUT_MS": config["KAFKA_MESSAGE_TIMEOUT_MS"],
        }))
        self.log_path = tmp_path / "bridge.log"
        self.process = None

    def start(self):
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("METRICS_PORT", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "nameko"), "run", "--config", str(self.config_path),
                 "bridge.kafka_relay"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def metric(self, name):
        """A sample of this process's Prometheus metrics (``metrics_port`` given)."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def bridge_process(bridge_config, tmp_path):
    bridge = BridgeProcess(tmp_path)
    yield bridge
    bridge.stop()


def declare_relay_queue():
    with Connection(config["AMQP_URI"]) as connection:
        declare_shards(connection, SOURCE_SERVICES)


def test_a_bridge_killed_with_sigkill_mid_stream_loses_nothing_after_restart(
        bridge_process, publish_events, kafka_reader):
    declare_relay_queue()  # what is published while no bridge runs waits in its queue
    reader = kafka_reader(config["KAFKA_TOPIC_PREFIX"] + "orders")
    bridge_process.start()
    warm_up = order_events(0, 1)
    publish_events(warm_up)
    reader.wait_for(lambda rs: len(rs) >= 1, timeout=60, message="the bridge running")

    sent = order_events(1, 2000)
    publisher = eventlet.spawn(paced, publish_events, sent)
    reader.wait_for(lambda rs: len(rs) >= 500, timeout=60, message="the bridge relaying the stream")
    bridge_process.kill()
    assert not publisher.dead, "the kill must land in the middle of the stream"
    relayed_at_kill = len(reader.poll())
    bridge_process.start()
    publisher.wait()

    wanted = {e["event_id"] for e in sent}
    records = reader.wait_for(lambda rs: wanted <= {r.value["event_id"] for r in rs}, timeout=120,
                              message=f"all 2000 events (had {relayed_at_kill} at the kill)")
    print(f"{relayed_at_kill} on Kafka at the kill; {len(records) - len(sent) - 1} repeats after the restart")
    assert_complete_and_in_order(records, warm_up + sent)
    assert read_queue(DEAD_LETTER_QUEUE) == []


def paced(publish, events, chunk=20):
    """Publishes like a busy system rather than one burst, so the stream is still flowing at the kill."""
    for start in range(0, len(events), chunk):
        publish(events[start:start + chunk])
        eventlet.sleep(0.02)


@pytest.fixture
def outage_config(rabbit_config, restartable_kafka):
    from tests.bridge.conftest import bridge_settings

    with config.patch(bridge_settings(restartable_kafka.bootstrap)):
        yield restartable_kafka


def test_a_backlog_built_while_kafka_was_down_for_20_seconds_drains_with_nothing_lost(
        outage_config, container_factory, publish_events, kafka_reader):
    kafka = outage_config
    container_factory(KafkaBridge).start()
    topic = config["KAFKA_TOPIC_PREFIX"] + "orders"
    warm_up = order_events(0, 20)
    publish_events(warm_up)
    kafka_reader(topic).wait_for(lambda rs: len(rs) >= 20, message="the bridge relaying before the outage")

    kafka.stop()
    backlog = order_events(20, 300)
    publish_events(backlog)
    eventlet.sleep(20)  # the outage itself; the bridge keeps running meanwhile
    assert read_queue(DEAD_LETTER_QUEUE) == [], "an outage must not dead-letter anything"
    kafka.start()  # tansu keeps nothing across a restart: only the backlog can be on the new broker

    wanted = {e["event_id"] for e in backlog}
    records = kafka_reader(topic).wait_for(lambda rs: wanted <= {r.value["event_id"] for r in rs}, timeout=120,
                                           message="the backlog after Kafka came back")
    print(f"backlog of {len(backlog)}: {len(records)} records, producer restarts {PRODUCER_RESTARTS._value.get()}")
    assert_complete_and_in_order(records, backlog)
    assert read_queue(DEAD_LETTER_QUEUE) == []
