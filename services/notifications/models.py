"""The notifications service's tables: every message it owes someone, and every invoice it rendered."""

from sqlalchemy import (
    BigInteger, Column, DateTime, Integer, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase

from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin

PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Notification(Base):
    """One message on one channel for one event; the unique key is what makes a send happen once."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("event_id", "kind", "channel", name="uq_notification_event_kind"),)

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    event_id = Column(String(36), nullable=False)
    kind = Column(String(40), nullable=False)
    channel = Column(String(10), nullable=False)
    recipient = Column(String(255), nullable=False)
    subject = Column(String(255), nullable=False, default="")
    context = Column(Text, nullable=False)  # JSON the templates render from, at send time
    order_id = Column(Integer, nullable=True, index=True)
    status = Column(String(10), nullable=False, default=PENDING)
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(1000), nullable=True)
    next_attempt_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    sent_at = Column(DateTime, nullable=True)


class Invoice(Base):
    __tablename__ = "invoices"

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    order_id = Column(Integer, nullable=False, unique=True)
    customer_id = Column(Integer, nullable=True, index=True)
    number = Column(String(40), nullable=True, unique=True)
    storage_key = Column(String(255), nullable=True)
    total = Column(String(20), nullable=False)
    currency = Column(String(3), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
