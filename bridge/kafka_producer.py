"""confluent-kafka inside Nameko: greenlets ``produce()``, one greenlet serves delivery reports with ``poll(0)``.

``poll(timeout)`` blocks the eventlet hub but ``poll(0)`` returns at once, so a greenlet polls without a timeout:
every ``BUSY_POLL_SECONDS`` while deliveries are in flight, otherwise after ``IDLE_POLL_SECONDS`` (error reports)
or as soon as something is produced. Delivery reports thus run in the hub's own thread. They used to run on an OS
thread looping on ``poll(0.1)``, but confluent-kafka takes the GIL once per report: while the hub was busy each take
could wait up to the interpreter's 5 ms switch interval, so reports, acks and the prefetch window lagged behind.

After a broker restart an idempotent producer can stall for good on ``UNKNOWN_PRODUCER_ID`` (messages end in
``_MSG_TIMED_OUT``): the poller then replaces the producer, and what was queued in the old one is reported failed
(retriable) so its owners retry it.
"""

import collections
import functools
import itertools
import logging

import eventlet
import eventlet.event
from confluent_kafka import KafkaError, KafkaException, Producer
from eventlet import patcher, tpool
from nameko import config
from nameko.extensions import DependencyProvider

from bridge.kafka_envelope import PoisonEvent, to_record
from bridge.kafka_metrics import IN_FLIGHT, PRODUCER_RESTARTS, RELAYED, observe_lag
from common import tracing

log = logging.getLogger(__name__)

_time = patcher.original("time")

BUSY_POLL_SECONDS = 0.002   # while deliveries are in flight: adds at most this to an event's lag
IDLE_POLL_SECONDS = 1.0  # a produce() ends the wait at once; this only paces error reports
RESTART_COOLDOWN_SECONDS = 5.0
SWEEP_SECONDS = 1.0
ERROR_LOG_INTERVAL = 30.0
# librdkafka's own timeout reports a message first; this only catches messages a replaced producer dropped
LOST_REPORT_GRACE_SECONDS = 10.0

STALL_CODES = {KafkaError._MSG_TIMED_OUT, KafkaError.UNKNOWN_PRODUCER_ID, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
               KafkaError.INVALID_PRODUCER_EPOCH}
PERMANENT_CODES = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_MSG,
                   KafkaError.INVALID_RECORD, KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.TOPIC_EXCEPTION,
                   KafkaError._INVALID_ARG}


class DeliveryFailed(Exception):
    def __init__(self, error):
        super().__init__(str(error))
        self.error = error

    @property
    def code(self):
        return self.error.code() if isinstance(self.error, KafkaError) else None

    @property
    def permanent(self):
        """True if producing the same message again can never succeed."""
        return self.code in PERMANENT_CODES

    @property
    def name(self):
        return self.error.name() if isinstance(self.error, KafkaError) else "local"


class Delivery:
    """The pending outcome of one produced message; resolved in the hub, never on the poll thread."""

    __slots__ = ("topic", "produced_at", "error", "done", "_callbacks", "_event")

    def __init__(self, topic):
        self.topic = topic
        self.produced_at = _time.monotonic()
        self.error = None
        self.done = False
        self._callbacks = []
        self._event = None

    def add_callback(self, callback):
        """``callback(delivery)`` once delivered or failed (at once if already done)."""
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def wait(self, timeout=None):
        """Block this greenlet until delivered; raise ``DeliveryFailed`` on failure."""
        if not self.done:
            self._event = self._event or eventlet.Event()
            with eventlet.Timeout(timeout):
                self._event.wait()
        if self.error is not None:
            raise DeliveryFailed(self.error)

    def resolve(self, error):
        if self.done:
            return
        self.error, self.done = error, True
        for callback in self._callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("delivery callback failed")
        self._callbacks = []
        if self._event is not None:
            self._event.send(True)


class KafkaPump:
    """One confluent-kafka ``Producer`` fed by greenlets and polled, without blocking, by one greenlet."""

    def __init__(self, producer_config, on_event=None, on_dispatched=None):
        self.producer_config = dict(producer_config)
        self.message_timeout = int(self.producer_config.get("message.timeout.ms", 300000)) / 1000.0
        self.on_event = on_event or (lambda kind, detail: None)
        self.on_dispatched = on_dispatched or (lambda: None)  # after each burst of resolved deliveries
        self._reports = collections.deque()   # (token, error) and ("event", kind, detail), from poll()'s callbacks
        self._pending = {}                    # token -> Delivery
        self._tokens = itertools.count()
        self._restart_wanted = False
        self._last_restart = 0.0
        self._producer = None
        self._poller = None
        self._idle = None                     # the Event the poller waits on while nothing is in flight

    def start(self):
        self._producer = self._new_producer()
        self._poller = eventlet.spawn(self._poll_loop)

    def produce(self, topic, key, value, headers):
        """Queue one message; returns its ``Delivery``. Waits (green) while librdkafka's queue is full."""
        token = next(self._tokens)
        delivery = Delivery(topic)
        report = functools.partial(self._on_delivery, token)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
                break
            except BufferError:
                eventlet.sleep(BUSY_POLL_SECONDS)
        self._pending[token] = delivery
        if self._idle is not None and not self._idle.ready():
            self._idle.send()
        return delivery

    @property
    def in_flight(self):
        return len(self._pending)

    def check(self, timeout):
        """The brokers and topics this producer sees: a metadata request on its own connections (in an OS thread:
        it blocks). Raises when it reaches no broker within ``timeout``."""
        metadata = tpool.execute(self._producer.list_topics, timeout=timeout)
        return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"

    def stop(self, flush_timeout=10.0):
        """Deliver what is queued (up to ``flush_timeout``), then drop the producer and resolve what is left."""
        if self._poller is not None:
            self._poller.kill()
            self._poller = None
        if self._producer is None:
            return
        self._drain(self._producer, flush_timeout)
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._producer.poll(0)
        self._producer = None  # destroys it: librdkafka's own threads stop reconnecting
        self._dispatch()
        for delivery in list(self._pending.values()):
            delivery.resolve(KafkaError(KafkaError._DESTROY, "the bridge stopped before delivery"))
        self._pending.clear()
        self.on_dispatched()

    def kill(self):
        self.stop(flush_timeout=0)

    def _poll_loop(self):
        last_sweep = _time.monotonic()
        while True:
            sweep = _time.monotonic() - last_sweep >= SWEEP_SECONDS
            if sweep:
                last_sweep = _time.monotonic()
            try:
                self._poll_once(sweep)
            except Exception:
                log.exception("Kafka poll failed")  # the loop must outlive it: every delivery depends on it
            if self._pending:
                eventlet.sleep(BUSY_POLL_SECONDS)
            else:
                self._idle = eventlet.event.Event()  # the next produce() ends the wait
                self._idle.wait(IDLE_POLL_SECONDS)
                self._idle = None

    def _poll_once(self, sweep):
        self._producer.poll(0)
        self._dispatch()
        if self._restart_wanted and _time.monotonic() - self._last_restart >= RESTART_COOLDOWN_SECONDS:
            self._restart()
        if sweep:
            self._sweep_lost()

    def _drain(self, producer, timeout):
        """``flush(timeout)`` without blocking the hub: serve reports until nothing is queued or time is up."""
        deadline = _time.monotonic() + timeout
        while True:
            producer.poll(0)
            self._dispatch()
            if len(producer) == 0 or _time.monotonic() >= deadline:
                return
            eventlet.sleep(BUSY_POLL_SECONDS)

    def _dispatch(self):
        if not self._reports:
            return
        while self._reports:
            report = self._reports.popleft()
            if report[0] == "event":
                self.on_event(report[1], report[2])
                continue
            delivery = self._pending.pop(report[0], None)
            if delivery is not None:
                delivery.resolve(report[1])
        self.on_dispatched()

    def _sweep_lost(self):
        deadline = _time.monotonic() - self.message_timeout - LOST_REPORT_GRACE_SECONDS
        for token, delivery in list(self._pending.items()):
            if delivery.produced_at > deadline:
                break  # tokens are in production order
            del self._pending[token]
            delivery.resolve(KafkaError(KafkaError._MSG_TIMED_OUT, "no delivery report (producer replaced)"))
        self.on_dispatched()

    def _new_producer(self):
        return Producer({**self.producer_config, "error_cb": self._on_error})

    def _restart(self):
        old = self._producer
        self._producer = self._new_producer()
        self._restart_wanted = False
        self._last_restart = _time.monotonic()
        old.purge(in_queue=True, in_flight=True, blocking=False)
        self._drain(old, 1.0)  # serves the purged messages' reports
        self._reports.append(("event", "producer_restarted", None))

    # -- called back from inside poll(): record and return, the loop acts on it --------------------------------------

    def _on_delivery(self, token, error, _message):
        if error is not None and error.code() in STALL_CODES:
            self._restart_wanted = True
        self._reports.append((token, error))

    def _on_error(self, error):
        if error.fatal() or error.code() in STALL_CODES:
            self._restart_wanted = True
        self._reports.append(("event", "error", error))


def producer_config():
    """The producer's librdkafka settings from Nameko config; ``KAFKA_PRODUCER_CONFIG`` adds or overrides any."""
    settings = {
        "bootstrap.servers": config.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "client.id": config.get("KAFKA_CLIENT_ID", "kafka_bridge"),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": int(config.get("KAFKA_LINGER_MS", 5)),
        "message.timeout.ms": int(config.get("KAFKA_MESSAGE_TIMEOUT_MS", 30000)),
        "queue.buffering.max.messages": 200000,
    }
    settings.update(config.get("KAFKA_PRODUCER_CONFIG") or {})
    return settings


class KafkaProducer(DependencyProvider):
    """Injects itself (``produce``, ``produce_each``); one ``KafkaPump`` per container."""

    def setup(self):
        self.prefix = config.get("KAFKA_TOPIC_PREFIX", "pos.")
        self.max_bytes = int(config.get("KAFKA_MAX_MESSAGE_BYTES", 900000))
        self.flush_timeout = float(config.get("KAFKA_FLUSH_TIMEOUT", 10))
        self.pump = KafkaPump(producer_config(), on_event=self.on_pump_event, on_dispatched=self.update_metrics)
        self.logged_at = {}
        self.settled, self.relayed, self.lags = 0, collections.Counter(), []

    def start(self):
        self.pump.start()

    def stop(self):
        self.pump.stop(self.flush_timeout)

    def kill(self):
        self.pump.kill()

    def get_dependency(self, worker_ctx):
        return self

    def readiness_checks(self, timeout):
        """For ``common.health.Readiness``: this producer reaches a Kafka broker (librdkafka's own timeout a little
        shorter than the check's, so its error names the cause)."""
        return {"kafka": functools.partial(self.pump.check, timeout * 0.8)}

    def produce_each(self, envelopes, traces=None):
        """Produce every envelope; for each, its ``Delivery`` or the ``PoisonEvent`` that rules it out."""
        outcomes = []
        try:
            for envelope, trace in zip(envelopes, traces or itertools.repeat(None), strict=False):
                try:
                    outcomes.append(self._produce(envelope, trace))
                except PoisonEvent as poison:
                    outcomes.append(poison)
        finally:
            IN_FLIGHT.inc(sum(isinstance(outcome, Delivery) for outcome in outcomes))
        return outcomes

    def produce(self, envelope):
        delivery = self._produce(envelope)
        IN_FLIGHT.inc()
        return delivery

    def _produce(self, envelope, trace=None):
        topic, key, value, headers = to_record(envelope, self.prefix, self.max_bytes)
        try:
            with tracing.continued(f"{topic} publish", trace, attributes={
                    "messaging.system": "kafka", "messaging.destination.name": topic,
                    "messaging.kafka.message.key": str(envelope.get("aggregate_id"))}) as carrier:
                headers = headers + [(name, text.encode()) for name, text in carrier.items()]
                delivery = self.pump.produce(topic, key, value, headers)
        except KafkaException as exc:
            if exc.args[0].code() in PERMANENT_CODES:
                raise PoisonEvent("rejected_by_kafka", str(exc)) from None
            raise
        delivery.add_callback(functools.partial(self.delivered, envelope.get("occurred_at")))
        return delivery

    def delivered(self, occurred_at, delivery):
        """Tallied here, published by ``update_metrics`` once per burst: a metric update per event cost more than
        its share of the relay's CPU."""
        self.settled += 1
        if delivery.error is None:
            self.relayed[delivery.topic] += 1
            if isinstance(occurred_at, str):  # anything else has no lag to observe
                self.lags.append(occurred_at)

    def update_metrics(self):
        settled, relayed, lags = self.settled, self.relayed, self.lags
        self.settled, self.relayed, self.lags = 0, collections.Counter(), []
        if settled:
            IN_FLIGHT.dec(settled)
        for topic, count in relayed.items():
            RELAYED.labels(topic).inc(count)
        for occurred_at, count in collections.Counter(lags).items():  # a burst shares few distinct seconds
            observe_lag(occurred_at, count)

    def on_pump_event(self, kind, detail):
        if kind == "producer_restarted":
            PRODUCER_RESTARTS.inc()
            log.warning("Kafka producer replaced after a stall")
            return
        now, name = _time.monotonic(), detail.name()
        if now - self.logged_at.get(name, -ERROR_LOG_INTERVAL) >= ERROR_LOG_INTERVAL:
            self.logged_at[name] = now  # librdkafka repeats these every reconnect attempt
            log.warning("Kafka: %s", detail.str())
