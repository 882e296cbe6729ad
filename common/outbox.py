"""Transactional outbox: events are written with the change that caused them, then published from the table.

A service maps ``OutboxMessageMixin`` onto its own Base, declares ``outbox = Outbox(OutboxMessage)`` beside its
``Database`` (``db``; ``Outbox(OutboxMessage, database="other")`` names another attribute), and calls
``self.outbox.add(session, event_type, aggregate_id, data)`` inside the transaction that commits the change. One
relay greenlet per process publishes unsent rows in id order (so one aggregate's events keep their order) to the
Nameko events exchange ``<service>.events`` with publisher confirms, and marks them sent only after the broker
confirmed them. It wakes as soon as a worker that wrote events ends, and also polls (every
``OUTBOX_POLL_INTERVAL``, backing off to ``OUTBOX_IDLE_POLL_MAX_SECONDS`` while it finds nothing), so rows left by
a crash or a broker outage go out when things recover: nothing committed is lost, repeats are possible.

Retention (the pruner, a timer of the same provider): every ``RETENTION_INTERVAL_SECONDS`` rows published more than
``OUTBOX_RETENTION_SECONDS`` ago are deleted, and so are the service's processed-event records (``Database(...,
handled_events=...)``) older than ``PROCESSED_EVENTS_RETENTION_SECONDS`` (both default to a week).

While its container runs the outbox exports its backlog (``pos_outbox_backlog{service}``, counted when scraped)
and counts every event the broker confirmed in ``pos_domain_events_total``.
"""

import json
import logging
from datetime import timedelta

import eventlet
from eventlet.event import Event
from nameko import config, serialization
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_URI_CONFIG_KEY, DEFAULT_AMQP_URI
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Text, delete, select, update

from common import tracing
from common.correlation import CORRELATION_KEY
from common.dependencies import declared
from common.events import event_headers, make_envelope, prune_processed, utcnow
from common.metrics import LiveCollector, count_domain_event

log = logging.getLogger(__name__)

BATCH_SIZE = 500
SCRAPE_TIMEOUT = 2.0
WEEK_SECONDS = 7 * 24 * 3600


class OutboxMessageMixin:
    __tablename__ = "outbox"
    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id = Column(String(36), nullable=False, unique=True)
    event_type = Column(String(64), nullable=False)
    aggregate_id = Column(String(64), nullable=False)
    envelope = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    published_at = Column(DateTime, nullable=True, index=True)
    attempts = Column(Integer, nullable=False, default=0)
    trace_context = Column(Text, nullable=True)  # the writer's W3C trace context: the relay's publish continues it


def forget_in_outbox(session, model, aggregate_ids, redact, chunk=500):
    """Erasure: the aggregates' events already published are deleted; those still waiting keep their place in line
    with ``redact(data)`` applied (it changes the dict in place)."""
    for start in range(0, len(aggregate_ids), chunk):
        ids = aggregate_ids[start:start + chunk]
        session.execute(delete(model).where(model.aggregate_id.in_(ids), model.published_at.is_not(None)))
        for row in session.scalars(select(model).where(model.aggregate_id.in_(ids))):
            envelope = json.loads(row.envelope)
            redact(envelope.get("data") or {})
            row.envelope = json.dumps(envelope)


def prune_sent(session, model, older_than):
    """Delete the outbox rows published before ``older_than``; how many."""
    return session.execute(delete(model).where(model.published_at < older_than)).rowcount


class OutboxWriter:
    def __init__(self, provider, worker_ctx):
        self.provider = provider
        self.worker_ctx = worker_ctx
        self.written = 0

    def add(self, session, event_type, aggregate_id, data, event_version=1):
        """Stage an event in ``session``; it is published only if that transaction commits."""
        envelope = make_envelope(
            event_type, aggregate_id, data,
            source=self.provider.container.service_name,
            correlation_id=self.worker_ctx.context_data.get(CORRELATION_KEY),
            event_version=event_version,
        )
        session.add(self.provider.model(
            event_id=envelope["event_id"], event_type=event_type,
            aggregate_id=envelope["aggregate_id"], envelope=json.dumps(envelope),
            trace_context=tracing.current_context(),
        ))
        self.written += 1
        return envelope


class Outbox(DependencyProvider):
    def __init__(self, model, poll_interval=None, database="db"):
        self.model = model
        self.poll_interval = poll_interval
        self.database_name = database
        self.writers = {}

    def setup(self):
        self.database = self.declared_database()
        self.collector = LiveCollector(self.collect_metrics)
        self.exchange = get_event_exchange(self.container.service_name)
        serializer, _ = serialization.setup()
        self.publisher = Publisher(
            config.get(AMQP_URI_CONFIG_KEY, DEFAULT_AMQP_URI),
            serializer=serializer, use_confirms=True, declare=[self.exchange],
        )
        if self.poll_interval is None:
            self.poll_interval = float(config.get("OUTBOX_POLL_INTERVAL", 1.0))
        self.idle_poll_max = max(self.poll_interval, float(config.get("OUTBOX_IDLE_POLL_MAX_SECONDS", 5.0)))
        self.wakeup = Event()
        self.running = False

    def declared_database(self):
        """The service's ``Database`` provider, declared as ``database_name`` on the service class."""
        return declared(self.container, self.database_name, "Outbox",
                        "a Database (or Outbox(model, database=<its attribute>))")

    def start(self):
        self.running = True
        self.relayed = Event()
        self.database.keep_open_until(self.relayed)
        self.relay_thread = self.container.spawn_managed_thread(self.run_relay)
        self.pruner_thread = self.container.spawn_managed_thread(self.run_pruner)
        self.collector.register()

    def stop(self):
        self.collector.unregister()
        self.running = False
        self.kick()
        self.relay_thread.wait()
        self.pruner_thread.kill()

    def kill(self):
        self.collector.unregister()
        self.running = False
        self.relay_thread.kill()
        self.pruner_thread.kill()

    def get_dependency(self, worker_ctx):
        writer = OutboxWriter(self, worker_ctx)
        self.writers[worker_ctx] = writer
        return writer

    def worker_teardown(self, worker_ctx):
        writer = self.writers.pop(worker_ctx, None)
        if writer is not None and writer.written:
            self.kick()

    def kick(self):
        if not self.wakeup.ready():
            self.wakeup.send(True)

    def run_relay(self):
        idle_delay, kicked = self.poll_interval, True
        while self.running:
            try:
                # a poll nobody kicked looks without the replicas' lock first: at rest that is one SELECT, not a
                # lock, a select and an unlock on two connections
                sent = self.relay_batch() if kicked or self.has_unsent() else 0
                total = sent
                while sent == BATCH_SIZE:
                    sent = self.relay_batch()
                    total += sent
                # a worker of this process kicks the relay, so polling only finds what a crashed replica left:
                # when it finds nothing, poll less and less often (the system's CPU at rest), up to the bound
                idle_delay = self.poll_interval if total else min(idle_delay * 2, self.idle_poll_max)
                delay = idle_delay
            except Exception:
                log.warning("outbox relay of %s failed; retrying", self.container.service_name,
                            exc_info=True)
                delay = min(self.poll_interval * 5, 5)
            kicked = False
            with eventlet.Timeout(delay, False):
                kicked = self.wakeup.wait()
            self.wakeup = Event()
        self.relay_remaining()
        self.relayed.send(True)

    def relay_remaining(self):
        """At stop, once every worker has ended: what they committed goes out now, not at another replica's (or
        this one's next start's) poll."""
        try:
            while self.relay_batch() == BATCH_SIZE:
                pass
        except Exception:
            log.warning("outbox relay of %s stopped with rows unsent; the next relay publishes them",
                        self.container.service_name, exc_info=True)

    def run_pruner(self):
        interval = float(config.get("RETENTION_INTERVAL_SECONDS") or 3600)
        while self.running:
            try:
                self.prune()
            except Exception:
                log.warning("retention pruning of %s failed; retrying", self.container.service_name, exc_info=True)
            eventlet.sleep(interval)

    def prune(self):
        """Delete what the retention settings no longer keep; ``(outbox rows, processed events)`` deleted."""
        now = utcnow()
        kept = float(config.get("OUTBOX_RETENTION_SECONDS") or WEEK_SECONDS)
        with self.database.Session(close_on_exit=True) as session:
            sent = prune_sent(session, self.model, now - timedelta(seconds=kept))
        handled, processed = getattr(self.database, "handled_events", None), 0
        if handled is not None:
            kept = float(config.get("PROCESSED_EVENTS_RETENTION_SECONDS") or WEEK_SECONDS)
            with self.database.Session(close_on_exit=True) as session:
                processed = prune_processed(session, handled, now - timedelta(seconds=kept))
        return sent, processed

    def unsent(self):
        return self.model.published_at.is_(None)

    def has_unsent(self):
        with self.database.Session(close_on_exit=True) as session:
            return session.scalar(select(self.model.id).where(self.unsent()).limit(1)) is not None

    def relay_batch(self):
        """Publish one batch of unsent rows in order; returns how many were sent.

        Replicas of a service take turns through a MySQL advisory lock so their batches never interleave; the
        batch is read and marked sent on the lock's own connection, in one transaction committed before the lock
        is released. On MySQL that transaction holds no lock while publishing (a plain read takes none, the UPDATE
        is by id); on SQLite a transaction is a write lock, so the read ends before publishing.
        """
        with self.database.engine.connect() as connection:
            if not self.take_turn(connection):
                return 0
            try:
                rows = connection.execute(
                    select(self.model.__table__).where(self.unsent())
                    .order_by(self.model.id).limit(BATCH_SIZE)
                ).all()
                if connection.dialect.name == "sqlite" or not rows:
                    connection.rollback()
                for row in rows:
                    self.publish(row)
                if rows:
                    connection.execute(
                        update(self.model).where(self.model.id.in_([row.id for row in rows]))
                        .values(published_at=utcnow(), attempts=self.model.attempts + 1)
                    )
                    connection.commit()
                return len(rows)
            except BaseException:
                if not connection.invalidated:
                    connection.rollback()
                raise
            finally:
                if not connection.invalidated:  # a lost MySQL session took its lock with it
                    self.end_turn(connection)

    def take_turn(self, connection):
        return connection.dialect.name != "mysql" or self.advisory(connection, "GET_LOCK(%s, 0)") == 1

    def end_turn(self, connection):
        if connection.dialect.name == "mysql":
            self.advisory(connection, "RELEASE_LOCK(%s)")

    def advisory(self, connection, call):
        """An advisory-lock call on ``connection``'s own DBAPI connection, outside SQLAlchemy's transaction: the
        lock is the MySQL session's, not the transaction's, and SQLAlchemy would begin one it then rolls back."""
        name = f"outbox:{self.container.service_name}:{connection.engine.url.database}"
        try:
            with connection.connection.cursor() as cursor:
                cursor.execute(f"SELECT {call}", (name,))
                return cursor.fetchone()[0]
        except Exception:
            connection.invalidate()  # a closed MySQL session holds no lock; a pooled one might
            raise

    def publish(self, row):
        envelope = json.loads(row.envelope)
        headers = {"nameko.correlation_id": envelope.get("correlation_id") or "", **event_headers(envelope)}
        carrier = json.loads(row.trace_context) if row.trace_context else None
        with tracing.continued(f"{row.event_type} publish", carrier,
                               attributes={"messaging.system": "rabbitmq", "messaging.destination.name":
                                           self.exchange.name, "messaging.message.id": row.event_id}) as trace:
            headers.update({f"nameko.{name}": value for name, value in trace.items()})
            self.publisher.publish(
                envelope, exchange=self.exchange, routing_key=row.event_type,
                headers=headers, retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
        count_domain_event(self.container.service_name, row.event_type)

    def backlog(self):
        with self.database.Session(close_on_exit=True) as session:
            return session.query(self.model).filter(self.unsent()).count()

    def collect_metrics(self):
        backlog = GaugeMetricFamily("pos_outbox_backlog", "Outbox rows not yet published", labels=["service"])
        count = self.read_backlog()
        if count is not None:
            backlog.add_metric([self.container.service_name], count)
        yield backlog

    def read_backlog(self):
        try:
            with eventlet.Timeout(SCRAPE_TIMEOUT):
                return self.backlog()
        except (Exception, eventlet.Timeout):  # a scrape reports what it can instead of failing
            log.warning("outbox backlog of %s unreadable", self.container.service_name, exc_info=True)
            return None
