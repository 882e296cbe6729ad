"""The webhooks service's tables: the subscriptions, one delivery per (webhook, event), and every attempt of it."""

import json
from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, aliased, relationship

from common.crypto import Encrypted
from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
ID = BigInteger().with_variant(Integer, "sqlite")
ERROR_LENGTH = 1000


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Webhook(Base):
    __tablename__ = "webhooks"

    id = Column(ID, primary_key=True, autoincrement=True)
    url = Column(String(2048), nullable=False)
    event_types = Column(Text, nullable=False)  # a JSON list; ["*"] for every event
    description = Column(String(255), nullable=True)
    secret = Column(Encrypted("webhooks.secret"), nullable=False)  # signs deliveries: never stored in clear
    active = Column(Boolean, nullable=False, default=True)
    failing_since = Column(DateTime, nullable=True)
    courier = Column(String(36), nullable=True)  # the process whose courier holds the lease on its deliveries
    courier_until = Column(DateTime, nullable=True)
    deactivated_at = Column(DateTime, nullable=True)
    deleted_at = Column(DateTime, nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    @property
    def events(self):
        return json.loads(self.event_types)

    @events.setter
    def events(self, values):
        self.event_types = json.dumps(list(dict.fromkeys(values)))

    def wants(self, event_type):
        return self.active and self.deleted_at is None and ("*" in self.events or event_type in self.events)

    def succeeded(self):
        self.failing_since = None

    def failed(self, now):
        if self.failing_since is None:
            self.failing_since = now

    def failing_for(self, now):
        return (now - self.failing_since).total_seconds() if self.failing_since else 0.0

    def deactivate(self, now):
        self.active, self.deactivated_at, self.updated_at = False, now, now

    def reactivate(self, now):
        self.active, self.failing_since, self.deactivated_at, self.updated_at = True, None, None, now


class Delivery(Base):
    """One event owed to one webhook; a redelivery is a new row with the same event and body."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status", "status", "webhook_id"),
                      Index("ix_webhook_deliveries_aggregate", "webhook_id", "aggregate_id", "status"))

    id = Column(ID, primary_key=True, autoincrement=True)
    webhook_id = Column(ID, ForeignKey("webhooks.id"), nullable=False, index=True)
    event_id = Column(String(36), nullable=False)
    event_type = Column(String(64), nullable=False)
    aggregate_id = Column(String(64), nullable=False)
    # the exact bytes sent (the Kafka value), so a retry signs the same body; encrypted: order events carry the
    # customer's name and address
    body = Column(Encrypted("webhook_deliveries.body"), nullable=False)
    status = Column(String(10), nullable=False, default=PENDING)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=True)
    last_status_code = Column(Integer, nullable=True)
    last_error = Column(String(ERROR_LENGTH), nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    first_attempt_at = Column(DateTime, nullable=True)
    delivered_at = Column(DateTime, nullable=True)

    history = relationship("Attempt", order_by="Attempt.attempt", lazy="selectin")

    def record(self, attempt, now, retry_in, give_up_after):
        """Apply one attempt's outcome; a failure is retried in ``retry_in`` seconds until ``give_up_after``."""
        self.attempts += 1
        self.first_attempt_at = self.first_attempt_at or now
        self.last_status_code, self.last_error = attempt.status_code, attempt.error
        if attempt.succeeded:
            self.status, self.delivered_at, self.next_attempt_at = DELIVERED, now, None
        elif (now - self.first_attempt_at).total_seconds() >= give_up_after:
            self.status, self.next_attempt_at = FAILED, None
        else:
            self.next_attempt_at = now + retry_in
        return Attempt(delivery_id=self.id, attempt=self.attempts, status_code=attempt.status_code,
                       latency_ms=attempt.latency_ms, error=attempt.error, attempted_at=now)


class Attempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempt"),)

    id = Column(ID, primary_key=True, autoincrement=True)
    delivery_id = Column(ID, ForeignKey("webhook_deliveries.id"), nullable=False)
    attempt = Column(Integer, nullable=False)
    status_code = Column(Integer, nullable=True)
    latency_ms = Column(Integer, nullable=True)
    error = Column(String(ERROR_LENGTH), nullable=True)
    attempted_at = Column(DateTime, nullable=False)


def live_webhooks(session):
    return session.scalars(select(Webhook).where(Webhook.deleted_at.is_(None)).order_by(Webhook.id)).all()


def due_heads(session, webhook_id, now, limit=500):
    """The deliveries of a webhook that may go now: per aggregate only the oldest pending one (its order), if due."""
    pending = session.scalars(select(Delivery).where(Delivery.webhook_id == webhook_id,
                                                     Delivery.status == PENDING)
                              .order_by(Delivery.id).limit(limit)).all()
    heads, seen = [], set()
    for delivery in pending:
        if delivery.aggregate_id in seen:
            continue
        seen.add(delivery.aggregate_id)
        if delivery.next_attempt_at is None or delivery.next_attempt_at <= now:
            heads.append(delivery)
    return heads


def webhooks_with_work(session, now):
    """Ids of active webhooks with a delivery that may go now (due, and the oldest pending of its aggregate)."""
    earlier = aliased(Delivery)
    blocked = select(earlier.id).where(earlier.webhook_id == Delivery.webhook_id,
                                       earlier.aggregate_id == Delivery.aggregate_id,
                                       earlier.status == PENDING, earlier.id < Delivery.id).exists()
    return set(session.scalars(
        select(Delivery.webhook_id).join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(Delivery.status == PENDING, Webhook.active.is_(True), Webhook.deleted_at.is_(None),
               (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now), ~blocked)
        .distinct()).all())


def next_retry_at(session):
    """When the earliest pending delivery of an active webhook that waits for a retry comes due (None: none)."""
    return session.scalar(select(func.min(Delivery.next_attempt_at)).join(Webhook, Webhook.id == Delivery.webhook_id)
                          .where(Delivery.status == PENDING, Delivery.next_attempt_at.is_not(None),
                                 Webhook.active.is_(True), Webhook.deleted_at.is_(None)))


def take_lease(session, webhook_id, courier, now, seconds):
    """Whether ``courier`` holds (took or renewed) the webhook's lease: one courier per webhook across replicas,
    so its deliveries go one at a time and in order."""
    taken = session.execute(update(Webhook).where(
        Webhook.id == webhook_id,
        or_(Webhook.courier_until.is_(None), Webhook.courier_until < now, Webhook.courier == courier))
        .values(courier=courier, courier_until=now + timedelta(seconds=seconds)))
    return taken.rowcount == 1


def end_lease(session, webhook_id, courier):
    session.execute(update(Webhook).where(Webhook.id == webhook_id, Webhook.courier == courier)
                    .values(courier=None, courier_until=None))
