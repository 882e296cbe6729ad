"""``relay_events``: a Nameko entrypoint over one durable queue bound to every source service's events exchange.

The decorated method gets a list of envelopes and returns, for each, its ``Delivery`` or the ``PoisonEvent`` that
stops it; an AMQP message is acked only when Kafka confirmed its delivery, so workers are free at once and many
events are in flight (up to ``KAFKA_BRIDGE_PREFETCH``). Outcomes:

- delivered: ack (with ``multiple=True`` once every earlier delivery is settled too: ``bridge.kafka_acks``);
- retriable failure (broker down, timeout, anything unexpected): requeue after a pause, never dead-lettered;
- ``PoisonEvent``, an undecodable body or a permanent Kafka rejection: published with the reason to the durable
  queue ``kafka_bridge.dead_letter``, then acked, and the relay goes on.
"""

import functools
import json
import logging
from datetime import UTC, datetime

import eventlet
from amqp.exceptions import ChannelError
from kombu import Exchange, Queue
from kombu.exceptions import DecodeError
from nameko import config
from nameko.amqp.consume import Consumer as ConsumerCore
from nameko.amqp.publish import Publisher, get_connection
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer
from nameko.standalone.events import get_event_exchange

from bridge.kafka_acks import AckWindow
from bridge.kafka_metrics import FAILURES
from bridge.kafka_producer import Delivery, DeliveryFailed
from common.amqp import Drains, ReadsAhead, SettlesSafely
from common.events import AGGREGATE_HEADER
from common.tracing import amqp_carrier

log = logging.getLogger(__name__)

QUEUE_NAME = "kafka_bridge.events"  # the single queue of bridges before sharding: drained, never bound again
SHARD_EXCHANGE = "kafka_bridge.shards"
SHARD_QUEUE = QUEUE_NAME + ".{:02d}"
DEAD_LETTER_QUEUE = "kafka_bridge.dead_letter"
RETRY_DELAY = 1.0


class DeadLetters:
    """Publishes what can never reach Kafka to a durable queue, with the reason and the original message."""

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self.queue = Queue(DEAD_LETTER_QUEUE, exchange=Exchange(""), routing_key=DEAD_LETTER_QUEUE, durable=True)
        self.publisher = Publisher(amqp_uri, serializer="json", use_confirms=True, declare=[self.queue])

    def declare(self):
        with get_connection(self.amqp_uri) as connection:
            self.queue(connection.default_channel).declare()

    def publish(self, message, reason, detail):
        FAILURES.labels("dead_lettered", reason).inc()
        log.error("dead-lettering an event (%s): %s", reason, detail)
        self.publisher.publish(
            {
                "reason": reason,
                "detail": detail,
                "exchange": message.delivery_info.get("exchange"),
                "routing_key": message.delivery_info.get("routing_key"),
                "headers": {k: str(v) for k, v in (message.headers or {}).items()},
                "content_type": message.content_type,
                "body": _body_text(message),
                "dead_lettered_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            },
            exchange="", routing_key=DEAD_LETTER_QUEUE, retry=True,
            retry_policy={"max_retries": None, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 5},
        )


def _body_text(message):
    body = message.body
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return str(body)


def shard_exchange():
    """Consistent hashing on the ``aggregate_id`` header: one aggregate's events always reach the same shard."""
    return Exchange(SHARD_EXCHANGE, type="x-consistent-hash", durable=True,
                    arguments={"hash-header": AGGREGATE_HEADER})


def shard_count():
    return int(config.get("KAFKA_BRIDGE_SHARDS", 16))


def shard_queues(shards=None):
    """``kafka_bridge.events.NN``: each with one active consumer at a time, so a shard is relayed in order."""
    exchange = shard_exchange()
    return [Queue(SHARD_QUEUE.format(i), exchange=exchange, routing_key="1", durable=True,
                  queue_arguments={"x-single-active-consumer": True})
            for i in range(shard_count() if shards is None else shards)]


def declare_shards(connection, source_services, shards=None):
    """Binds every ``<service>.events`` exchange to the shard exchange and declares the shard queues.

    Returns the old single queue if it still exists (a bridge before sharding left it): it is unbound, so it only
    drains what it held at the upgrade.
    """
    channel = connection.default_channel
    exchange = shard_exchange()(channel)
    exchange.declare()
    for name in source_services:
        source = get_event_exchange(name)(channel)
        source.declare()
        exchange.bind_to(source, routing_key="#")
    for queue in shard_queues(shards):
        queue(channel).declare()
    try:
        channel.queue_declare(QUEUE_NAME, passive=True)
    except ChannelError:
        return None
    channel = connection.channel()
    for name in source_services:
        channel.queue_unbind(QUEUE_NAME, get_event_exchange(name).name, routing_key="#")
    return Queue(QUEUE_NAME, durable=True)


class RawConsumer(Drains, ReadsAhead, SettlesSafely, ConsumerCore):
    """Hands the entrypoint kombu's messages undecoded (and reads the socket ahead, as every consumer of ours)."""

    def get_consumers(self, consumer_cls, channel):
        consumer = consumer_cls(queues=self.queues, on_message=self.on_raw_message, accept=self.accept,
                                **self.consumer_options)
        consumer.qos(prefetch_count=self.prefetch_count)
        return [consumer]

    def on_raw_message(self, message):
        self.took(message)
        if self.stop_requested:
            self.requeue_message(message)
            return
        for callback in self.callbacks:
            callback(message)


def decode_body(message):
    """The envelope of a JSON message, as kombu would decode it, without its per-object hook in the common case.

    kombu's JSON hook only turns ``{"__type__": ..., "__value__": ...}`` objects into Python values (its encoder
    writes that key as is): a text body without that text, the common case, skips the hook; the rest (bytes, any
    other content type, an empty body) takes kombu's own path.
    """
    body = message.body
    if message.content_type != "application/json" or not isinstance(body, str) or not body or "__type__" in body:
        return message.decode()
    try:
        return json.loads(body)
    except ValueError as exc:  # as kombu reports it
        raise DecodeError(exc) from None


class EventRelay(Consumer):
    """Hands each burst of AMQP messages (up to ``KAFKA_BRIDGE_BATCH``) to one worker as a list of envelopes.

    A Nameko worker per event costs more than producing it, so a worker gets every message that arrived before the
    consumer next waits on the socket: no added latency, and one worker per burst under load.
    """

    consumer_cls = RawConsumer
    trace_workers = False  # a burst holds many traces' events: each record's produce is a span of its own trace

    def __init__(self, source_services, **kwargs):
        self.source_services = tuple(source_services)
        super().__init__(None, requeue_on_error=True, **kwargs)

    def setup(self):
        self.queue = None  # the consumer's queues are the shards, set in start()
        self.batch_size = int(config.get("KAFKA_BRIDGE_BATCH", 500))
        self.consumer_options.setdefault("prefetch_count", int(config.get("KAFKA_BRIDGE_PREFETCH", 2000)))
        self.consumer_options["on_decode_error"] = self.handle_undecodable
        self.dead_letters = DeadLetters(self.amqp_uri)
        self.acks = AckWindow(functools.partial(self.container.spawn_managed_thread, identifier="EventRelay.acks"))
        self.batch = []
        super().setup()

    def start(self):
        self.dead_letters.declare()  # so operators can watch it before the first poison event
        with get_connection(self.amqp_uri) as connection:
            legacy = declare_shards(connection, self.source_services)
        # every replica consumes every shard; RabbitMQ makes one consumer per shard the active one
        self.consumer.queues = shard_queues() + ([legacy] if legacy is not None else [])
        super().start()

    def handle_message(self, message):
        self.acks.received(message)
        try:
            body = decode_body(message)
        except Exception as exc:
            self.dead_letter_undecodable(message, exc)
            return
        if not self.batch:
            self.container.spawn_managed_thread(self.flush, identifier="EventRelay.flush")
        self.batch.append((body, message))
        if len(self.batch) >= self.batch_size:
            self.flush()
            eventlet.sleep(0)  # the consumer reads on while the socket has data: let the worker produce meanwhile

    def flush(self):
        batch, self.batch = self.batch, []
        if not batch:
            return
        bodies, messages = [body for body, _ in batch], [message for _, message in batch]
        traces = [amqp_carrier(message.headers) for message in messages]
        try:
            self.container.spawn_worker(self, (bodies,), {"traces": traces}, context_data={},
                                        handle_result=functools.partial(self.handle_result, messages))
        except ContainerBeingKilled:
            for message in messages:
                self.requeue(message)

    def handle_result(self, messages, worker_ctx, result=None, exc_info=None):
        if exc_info is not None:
            for message in messages:
                self.container.spawn_managed_thread(
                    functools.partial(self.retry_later, message, type(exc_info[1]).__name__))
            return result, exc_info
        for message, outcome in zip(messages, result, strict=True):
            if isinstance(outcome, Delivery):
                outcome.add_callback(functools.partial(self.settle, message))
            else:
                self.container.spawn_managed_thread(
                    functools.partial(self.dead_letter, message, outcome.reason, outcome.detail))
        return result, exc_info

    def settle(self, message, delivery):
        """Runs in the hub when Kafka reported on the message; must not block."""
        if delivery.error is None:
            self.acks.confirm(message)
            return
        failure = DeliveryFailed(delivery.error)
        if failure.permanent:
            self.container.spawn_managed_thread(
                functools.partial(self.dead_letter, message, "rejected_by_kafka", str(failure)))
        else:
            self.container.spawn_managed_thread(functools.partial(self.retry_later, message, failure.name))

    def handle_undecodable(self, message, exc):
        """A message kombu could not even build (e.g. a body it failed to decompress); it never reaches
        ``handle_message``, which refuses the rest through ``decode_body``."""
        self.acks.received(message)
        self.dead_letter_undecodable(message, exc)

    def dead_letter_undecodable(self, message, exc):
        self.container.spawn_managed_thread(
            functools.partial(self.dead_letter, message, "undecodable", f"{type(exc).__name__}: {exc}"))

    def dead_letter(self, message, reason, detail):
        try:
            self.dead_letters.publish(message, reason, detail)
        except Exception:
            log.exception("could not dead-letter a message; requeueing it")
            self.retry_later(message, "dead_letter_failed")
            return
        self.acks.confirm(message)

    def retry_later(self, message, reason):
        FAILURES.labels("retried", reason).inc()
        eventlet.sleep(RETRY_DELAY)  # an outage should not become a hot redelivery loop
        self.requeue(message)

    def requeue(self, message):
        self.consumer.requeue_message(message)
        self.acks.release(message)  # only now: a range ack sent before the requeue would have acked it


relay_events = EventRelay.decorator
