"""Kafka: the raw confluent-kafka produce floor, and events relayed AMQP -> Kafka by the ``kafka_bridge`` process."""

import json
import multiprocessing
import os
import signal
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


def publish_share(amqp_uri, tag, seqs, rate, start_at, done):
    """One publisher process: ``seqs`` to ``notifications.events`` as the outbox does (same exchange, routing key,
    headers, persistent JSON), paced at ``rate`` per second from ``start_at`` (0: as fast as it can). Plain py-amqp
    with the body encoded once: kombu's ``Producer.publish`` cost more CPU than the relay it was measuring."""
    import warnings

    warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
    import amqp
    from kombu import Connection
    from nameko.standalone.events import get_event_exchange

    exchange = get_event_exchange(RELAY_SOURCE)
    with Connection(amqp_uri) as connection:
        channel = connection.default_channel
        exchange(channel).declare()
        time.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        for index, seq in enumerate(seqs):
            envelope = sample_envelope(seq, tag)
            channel.basic_publish(amqp.Message(
                json.dumps(envelope), content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                application_headers={"nameko.correlation_id": envelope["correlation_id"],
                                     "event_id": envelope["event_id"], "event_type": RELAY_EVENT}),
                exchange=exchange.name, routing_key=RELAY_EVENT)
            ahead = started + (index + 1) / rate - time.time() if rate else 0
            if ahead > 0.005:  # sleeping for less overshoots
                time.sleep(ahead)
        channel.basic_qos(0, 1, False)  # a round trip: everything before it has reached the broker
    done.put((started, time.time()))


def publish_all(amqp_uri, tag, count, rate, publishers):
    """``count`` events from ``publishers`` processes (one connection each), ``rate`` per second in all (0: no
    pacing); returns ``(first publish, last publish)`` wall times."""
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    start_at = time.time() + 2  # the processes start (imports) before anyone publishes
    processes = [context.Process(target=publish_share, daemon=True, args=(
        amqp_uri, tag, range(index, count, publishers), rate / publishers, start_at, done))
        for index in range(publishers)]
    for process in processes:
        process.start()
    spans = [done.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(10)
    return min(s for s, _ in spans), max(e for _, e in spans)


def wait_for_arrivals(reader, count, timeout):
    deadline = time.monotonic() + timeout
    while len(reader.arrivals) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    reader.stopping.set()
    reader.join(10)
    return list(reader.arrivals.values())


def relay(amqp_uri, bootstrap, count, prefix, rate=5000, publishers=3, timeout=120):
    """Publish ``count`` envelopes paced at ``rate`` per second while the bridge runs; time each one out of Kafka."""
    tag = uuid.uuid4().hex
    reader = TopicReader(bootstrap, prefix + RELAY_TOPIC, tag)
    reader.start()
    started, finished = publish_all(amqp_uri, tag, count, rate, publishers)
    arrivals = wait_for_arrivals(reader, count, timeout)
    published = finished - started
    last = max((arrived for arrived, _lag in arrivals), default=started)
    return Throughput("events relayed AMQP -> Kafka (first publish to last arrival)", len(arrivals),
                      last - started, count - len(arrivals), count / published if published else 0.0,
                      percentiles([lag * 1000 for _arrived, lag in arrivals]),
                      f"published at {count / published:,.0f}/s (target {rate:,}/s) by {publishers} processes"
                      if published else "")


def drain(amqp_uri, bootstrap, count, prefix, bridge_pid, publishers=3, timeout=120):
    """The relay alone: ``count`` envelopes queued while the bridge is paused (SIGSTOP), then timed from SIGCONT
    to the last arrival on Kafka."""
    tag = uuid.uuid4().hex
    reader = TopicReader(bootstrap, prefix + RELAY_TOPIC, tag)
    reader.start()
    os.kill(bridge_pid, signal.SIGSTOP)
    try:
        publish_all(amqp_uri, tag, count, 0, publishers)
    finally:
        resumed = time.time()
        os.kill(bridge_pid, signal.SIGCONT)
    arrivals = wait_for_arrivals(reader, count, timeout)
    last = max((arrived for arrived, _lag in arrivals), default=resumed)
    return Throughput("events drained from a pre-loaded queue (resume to last arrival)", len(arrivals),
                      last - resumed, count - len(arrivals), note=f"{count:,} events queued while the bridge was "
                      "paused (SIGSTOP), then timed from SIGCONT")
