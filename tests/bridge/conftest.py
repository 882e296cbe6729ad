"""Fixtures for the Kafka bridge: a real tansu broker (a subprocess on a free port) and a Kafka reader.

One broker serves the whole session; each test gets its own topic prefix, so tests never see each other's
records. ``restartable_kafka`` gives a test its own broker that it may stop and start.
"""

import json
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from nameko import config
from nameko.amqp.publish import Publisher
from nameko.standalone.events import get_event_exchange

from scripts.tansu import free_port, launch
from tests.support import wait_until


class Tansu:
    def __init__(self, tmp_dir):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = tmp_dir / f"tansu-{self.port}.log"
        self.process = None

    def start(self):
        self.process = launch(self.port, log_path=self.log_path)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    broker = Tansu(tmp_path_factory.mktemp("tansu"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def restartable_kafka(tmp_path):
    broker = Tansu(tmp_path)
    broker.start()
    yield broker
    broker.stop()


def bridge_settings(bootstrap):
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "KAFKA_MESSAGE_TIMEOUT_MS": 5000,
        "KAFKA_FLUSH_TIMEOUT": 2,
        "serializer": "json",
    }


@pytest.fixture
def bridge_config(rabbit_config, kafka_broker):
    with config.patch(bridge_settings(kafka_broker.bootstrap)):
        yield config


class KafkaReader:
    """Reads every record of one topic from the beginning, by ``assign()`` (no consumer group to join)."""

    def __init__(self, bootstrap, topic):
        self.bootstrap, self.topic = bootstrap, topic
        self.consumer = None
        self.records = []

    def _assign(self):
        metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=5)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        self.consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False, "enable.partition.eof": False})
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in sorted(topic.partitions)])
        return True

    def poll(self):
        """Fetch what is there now; returns all records read so far."""
        if self.consumer is None and not self._assign():
            return self.records
        for message in self.consumer.consume(10000, 0):  # a timeout would block the eventlet hub
            if message.error() is None:
                self.records.append(Record(message))
        return self.records

    def wait_for(self, predicate, timeout=30, message="records"):
        """Wait (green) until ``predicate(records)`` holds; returns the records."""
        wait_until(lambda: predicate(self.poll()), timeout=timeout, interval=0.05, message=message)
        return self.records

    def close(self):
        if self.consumer is not None:
            self.consumer.close()


class Record:
    def __init__(self, message):
        self.topic = message.topic()
        self.partition = message.partition()
        self.key = message.key().decode() if message.key() is not None else None
        self.headers = {name: value.decode() for name, value in (message.headers() or [])}
        self.value = json.loads(message.value())


@pytest.fixture
def kafka_reader():
    readers = []

    def open_reader(topic, bootstrap=None):
        reader = KafkaReader(bootstrap or config["KAFKA_BOOTSTRAP_SERVERS"], topic)
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        reader.close()


def envelope(event_type, aggregate_id, data, source, correlation_id="test-correlation", event_id=None):
    """An envelope exactly as ``common.events.make_envelope`` builds it."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": 1,
        "occurred_at": datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z",
        "source": source,
        "correlation_id": correlation_id,
        "aggregate_id": str(aggregate_id),
        "data": data,
    }


@pytest.fixture
def publish_events(rabbit_config):
    """Publishes envelopes the way ``common.outbox`` does: to ``<source>.events``, routing key = event type."""
    publisher = Publisher(config["AMQP_URI"], serializer="json", use_confirms=True)

    def publish(envelopes):
        for item in envelopes:
            publisher.publish(
                item, exchange=get_event_exchange(item["source"]), routing_key=item["event_type"],
                headers={"nameko.correlation_id": item.get("correlation_id") or "",
                         "event_id": item["event_id"], "event_type": item["event_type"],
                         "aggregate_id": str(item.get("aggregate_id", ""))},
            )

    return publish
