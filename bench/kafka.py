"""Kafka: the raw confluent-kafka produce floor, and events relayed AMQP -> Kafka by the ``kafka_bridge`` process."""

import json
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer, TopicPartition

from common.timers import wait_for

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
    shards_held: list = field(default_factory=list)  # per bridge replica, after a drain by several

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


def sample_envelope(seq, tag, sent_at=None):
    """A ``notification.sent`` envelope; its correlation id ``bench:<tag>:<seq>`` (a Kafka header on the relayed
    record) lets the reader match it without parsing the value."""
    return {"event_id": str(uuid.uuid4()), "event_type": RELAY_EVENT, "event_version": 1,
            "occurred_at": "2026-11-24T13:00:00Z", "source": RELAY_SOURCE, "correlation_id": f"bench:{tag}:{seq}",
            "aggregate_id": str(seq), "data": {"bench_run": tag, "seq": seq,
                                               "sent_at": time.time() if sent_at is None else sent_at,
                                               "channel": "email", "template": "order_paid"}}


SENT_AT_MARK = "@SENT_AT@"


def prepared_message(seq, tag):
    """``(message, head, tail)``: the AMQP message as the outbox sends it, and its JSON body around ``sent_at``,
    which the publisher writes in as it sends."""
    import amqp

    envelope = sample_envelope(seq, tag, sent_at=SENT_AT_MARK)
    head, tail = json.dumps(envelope).split(f'"{SENT_AT_MARK}"')
    message = amqp.Message(b"", content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                           application_headers={"nameko.correlation_id": envelope["correlation_id"],
                                                "event_id": envelope["event_id"], "event_type": RELAY_EVENT,
                                                "aggregate_id": envelope["aggregate_id"]})
    return message, head.encode(), tail.encode()


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
    """Reads one topic from the beginning (``assign``, no group join) and notes when each bench event arrived.

    Events are matched by their ``correlation_id`` header (``bench:<tag>:<seq>``) and timed by ``data.sent_at``, so
    only this run's events are decoded. ``consume`` returns every 10 ms: with a longer timeout an event could wait
    there for it, and that wait would be counted as relay lag.
    """

    def __init__(self, bootstrap, topic, tag):
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                                  "auto.offset.reset": "earliest"})
        self.topic = topic
        self.assigned = False
        self.mark = f"bench:{tag}:".encode()
        self.arrivals = {}   # seq -> (arrived, lag); seq >= 0
        self.warm_ups = set()  # seq < 0
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
            messages = self.consumer.consume(1000, 0.01)
            now = time.time()
            for message in messages:
                if message.error() is None:
                    self.note(message, now)
        self.consumer.close()

    def note(self, message, now):
        correlation_id = dict(message.headers() or ()).get("correlation_id", b"")
        if not correlation_id.startswith(self.mark):
            return
        seq = int(correlation_id[len(self.mark):])
        if seq < 0:
            self.warm_ups.add(seq)
        elif seq not in self.arrivals:
            self.arrivals[seq] = (now, now - json.loads(message.value())["data"]["sent_at"])


def publish_share(amqp_uri, tag, seqs, rate, start, done):
    """One publisher process: ``seqs`` to ``notifications.events`` as the outbox does (same exchange, routing key,
    headers, persistent JSON), paced at ``rate`` per second (0: as fast as it can) from the time it takes from
    ``start``. Plain py-amqp, and every message is built before that but for its ``sent_at``: the bench shares the
    2 cores with the relay it measures, so it does as little as it can while the clock runs."""
    import warnings

    warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")
    from kombu import Connection
    from nameko.standalone.events import get_event_exchange

    exchange = get_event_exchange(RELAY_SOURCE)
    messages = [prepared_message(seq, tag) for seq in seqs]
    with Connection(amqp_uri) as connection:
        channel = connection.default_channel
        exchange(channel).declare()
        done.put(None)  # ready
        start_at = start.get(timeout=600)
        time.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        for index, (message, head, tail) in enumerate(messages):
            message.body = head + repr(time.time()).encode() + tail
            channel.basic_publish(message, exchange=exchange.name, routing_key=RELAY_EVENT)
            ahead = started + (index + 1) / rate - time.time() if rate else 0
            if ahead > 0.005:  # sleeping for less overshoots
                time.sleep(ahead)
        channel.basic_qos(0, 1, False)  # a round trip: everything before it has reached the broker
    done.put((started, time.time()))


def publish_all(amqp_uri, tag, count, rate, publishers):
    """``count`` events from ``publishers`` processes (one connection each), ``rate`` per second in all (0: no
    pacing); returns ``(first publish, last publish)`` wall times. The clock starts once every process has
    started, imported and built its messages (seconds of CPU that used to overlap the measured relay)."""
    context = multiprocessing.get_context("spawn")
    start, done = context.Queue(), context.Queue()
    processes = [context.Process(target=publish_share, daemon=True, args=(
        amqp_uri, tag, range(index, count, publishers), rate / publishers, start, done))
        for index in range(publishers)]
    for process in processes:
        process.start()
    for _ in processes:
        done.get(timeout=600)
    start_at = time.time() + 0.2
    for _ in processes:
        start.put(start_at)
    spans = [done.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(10)
    return min(s for s, _ in spans), max(e for _, e in spans)


def local_publish(amqp_uri, tag, seqs):
    """``seqs`` published from this process, at once (the warm-up)."""
    start, done = queue.SimpleQueue(), queue.SimpleQueue()
    start.put(0)
    publish_share(amqp_uri, tag, seqs, 0, start, done)


def wait_for_arrivals(reader, count, timeout):
    wait_for(lambda: len(reader.arrivals) >= count, timeout, interval=0.1)
    reader.stopping.set()
    reader.join(10)
    return list(reader.arrivals.values())


def warm_up(amqp_uri, reader, tag, count=200, timeout=60):
    """``count`` events relayed before the clock starts. The topic's first record makes tansu create it, the
    bridge's producer fetch its metadata and the reader find and assign it: a one-off of up to a second that a
    4-second run would otherwise put in its p99, though a running relay never pays it again."""
    local_publish(amqp_uri, tag, range(-count, 0))
    wait_for(lambda: len(reader.warm_ups) >= count, timeout, interval=0.05)
    return len(reader.warm_ups) == count


def relay(amqp_uri, bootstrap, count, prefix, rate=5000, publishers=3, timeout=120):
    """Publish ``count`` envelopes paced at ``rate`` per second while the bridge runs; time each one out of Kafka."""
    tag = uuid.uuid4().hex
    reader = TopicReader(bootstrap, prefix + RELAY_TOPIC, tag)
    reader.start()
    warmed = warm_up(amqp_uri, reader, tag)
    started, finished = publish_all(amqp_uri, tag, count, rate, publishers)
    arrivals = wait_for_arrivals(reader, count, timeout)
    published = finished - started
    last = max((arrived for arrived, _lag in arrivals), default=started)
    note = f"published at {count / published:,.0f}/s (target {rate:,}/s) by {publishers} processes" if published else ""
    if not warmed:
        note += "; the warm-up events did not all arrive"
    return Throughput("events relayed AMQP -> Kafka (first publish to last arrival)", len(arrivals),
                      last - started, count - len(arrivals), count / published if published else 0.0,
                      percentiles([lag * 1000 for _arrived, lag in arrivals]), note)


def drain(amqp_uri, bootstrap, count, prefix, bridge_pid, publishers=3, timeout=120):
    """The relay alone: ``count`` envelopes queued while the bridge is paused (SIGSTOP), then timed from SIGCONT
    to the last arrival on Kafka. ``bridge_pid``: one bridge process, or a list of replicas paused and resumed
    together."""
    pids = bridge_pid if isinstance(bridge_pid, list | tuple) else [bridge_pid]
    tag = uuid.uuid4().hex
    reader = TopicReader(bootstrap, prefix + RELAY_TOPIC, tag)
    reader.start()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        publish_all(amqp_uri, tag, count, 0, publishers)
    finally:
        resumed = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    arrivals = wait_for_arrivals(reader, count, timeout)
    last = max((arrived for arrived, _lag in arrivals), default=resumed)
    return Throughput("events drained from a pre-loaded queue (resume to last arrival)", len(arrivals),
                      last - resumed, count - len(arrivals), note=f"{count:,} events queued while the bridge was "
                      "paused (SIGSTOP), then timed from SIGCONT")
