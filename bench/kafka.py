"""Kafka: the raw confluent-kafka produce floor, and events relayed AMQP -> Kafka by the ``kafka_bridge`` process."""

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer, TopicPartition

RELAY_SOURCE, RELAY_EVENT, RELAY_TOPIC = "notifications", "notification.sent", "notifications"


@dataclass
class Throughput:
    name: str
    messages: int = 0
    seconds: float = 0.0
    errors: int = 0
    publish_rate: float = 0.0
    lag_ms: dict = field(default_factory=dict)
    note: str = ""
    profiles: list = field(default_factory=list)

    @property
    def rate(self):
        return self.messages / self.seconds if self.seconds else 0.0


def percentiles(values, points=(50, 95, 99)):
    if not values:
        return {}
    ordered = sorted(values)
    return {f"p{p}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in points} | {
        "max": ordered[-1]}


def relay_producer_config(bootstrap):
    """The bridge's producer settings (bridge/kafka_producer.producer_config), so the floor is like for like."""
    return {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "queue.buffering.max.messages": 200000}


def sample_envelope(seq, tag):
    return {"event_id": str(uuid.uuid4()), "event_type": RELAY_EVENT, "event_version": 1,
            "occurred_at": "2026-11-24T13:00:00Z", "source": RELAY_SOURCE, "correlation_id": str(uuid.uuid4()),
            "aggregate_id": str(seq), "data": {"bench_run": tag, "seq": seq, "sent_at": time.time(),
                                               "channel": "email", "template": "order_paid"}}


def produce_floor(bootstrap, count, topic="bench.floor"):
    """Raw ``Producer.produce`` of ``count`` envelope-sized records, timed from the first produce to the last ack."""
    producer = Producer(relay_producer_config(bootstrap))
    errors, done = [0], [0]

    def delivered(error, _message):
        done[0] += 1
        errors[0] += error is not None

    producer.produce(topic, b"warm-up", on_delivery=delivered)
    producer.flush(30)
    value = json.dumps(sample_envelope(0, "floor")).encode()
    started = time.monotonic()
    for seq in range(count):
        while True:
            try:
                producer.produce(topic, value, key=str(seq).encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    seconds = time.monotonic() - started
    return Throughput("raw confluent-kafka produce (acks=all, idempotent, linger 5 ms)", done[0] - 1, seconds,
                      errors[0] + (count + 1 - done[0]))


class TopicReader(threading.Thread):
    """Reads one topic from the beginning (``assign``, no group join) and notes when each bench event arrived."""

    def __init__(self, bootstrap, topic, tag):
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                                  "auto.offset.reset": "earliest"})
        self.topic = topic
        self.assigned = False
        self.tag = tag
        self.arrivals = {}
        self.stopping = threading.Event()

    def assign(self):
        """Every partition, once the relay's first record has created the topic."""
        metadata = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return False
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in sorted(metadata.partitions)])
        return True

    def run(self):
        while not self.stopping.is_set():
            self.assigned = self.assigned or self.assign()
            if not self.assigned:
                time.sleep(0.1)
                continue
            for message in self.consumer.consume(5000, 0.2):
                if message.error() is not None:
                    continue
                now = time.time()
                data = json.loads(message.value()).get("data") or {}
                if data.get("bench_run") == self.tag:
                    self.arrivals.setdefault(data["seq"], (now, now - data["sent_at"]))
        self.consumer.close()


def relay(amqp_uri, bootstrap, count, prefix, rate=5000, timeout=120):
    """Publish ``count`` envelopes to ``notifications.events`` as the outbox does (same exchange, routing key,
    headers, persistent JSON), paced at ``rate`` per second; time each one out of Kafka."""
    from kombu import Connection, Producer
    from nameko.standalone.events import get_event_exchange

    tag = uuid.uuid4().hex
    reader = TopicReader(bootstrap, prefix + RELAY_TOPIC, tag)
    reader.start()
    exchange = get_event_exchange(RELAY_SOURCE)
    with Connection(amqp_uri) as connection:
        producer = Producer(connection.channel(), exchange=exchange, serializer="json")
        exchange(producer.channel).declare()
        started = time.time()
        for seq in range(count):
            envelope = sample_envelope(seq, tag)
            producer.publish(envelope, routing_key=RELAY_EVENT, delivery_mode=2, headers={
                "nameko.correlation_id": envelope["correlation_id"], "event_id": envelope["event_id"],
                "event_type": RELAY_EVENT})
            ahead = started + (seq + 1) / rate - time.time()
            if ahead > 0.005:  # sleeping for less overshoots
                time.sleep(ahead)
        published = time.time() - started
    deadline = time.monotonic() + timeout
    while len(reader.arrivals) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    reader.stopping.set()
    reader.join(10)
    arrivals = list(reader.arrivals.values())
    last = max((arrived for arrived, _lag in arrivals), default=started)
    return Throughput("events relayed AMQP -> Kafka (first publish to last arrival)", len(arrivals),
                      last - started, count - len(arrivals), count / published if published else 0.0,
                      percentiles([lag * 1000 for _arrived, lag in arrivals]),
                      f"published at {count / published:,.0f}/s (target {rate:,}/s)" if published else "")
