"""The notifications service's tables: every message it owes someone, and every invoice it rendered.

Recipients, the rendering context (the order with its address, the customer's name) and send errors (which can
quote an address) are stored encrypted (``common.crypto``); ``customer_id`` finds a customer's messages to erase.
"""

from datetime import timedelta

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase

from common.crypto import Encrypted
from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin, forget_in_outbox

PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxMessageMixin, Base):
    envelope = Column(Encrypted("outbox.envelope"), nullable=False)  # notification.sent names the recipient


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
    recipient = Column(Encrypted("notifications.recipient"), nullable=False)
    subject = Column(String(255), nullable=False, default="")
    context = Column(Encrypted("notifications.context"), nullable=False)  # JSON the templates render from
    order_id = Column(Integer, nullable=True, index=True)
    customer_id = Column(Integer, nullable=True, index=True)
    status = Column(String(10), nullable=False, default=PENDING)
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(Encrypted("notifications.last_error"), nullable=True)
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
    erased_at = Column(DateTime, nullable=True)  # its customer was erased: re-issued without name or address


def due_notification_ids(session, now, limit=100):
    return session.scalars(
        select(Notification.id).where(Notification.status == PENDING, Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at).limit(limit)
    ).all()


def claim(session, notification_id, now, lease_seconds):
    """Take a pending notification for one attempt; False if another worker (or replica) holds it.

    The claim pushes ``next_attempt_at`` past the lease, so a worker that dies mid-send leaves the row to be
    retried once the lease runs out rather than stuck.
    """
    result = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.status == PENDING,
               Notification.next_attempt_at <= now)
        .values(next_attempt_at=now + timedelta(seconds=lease_seconds), attempts=Notification.attempts + 1)
    )
    return result.rowcount == 1


def claimed(notification, now, lease_seconds):
    """A new notification, taken for its first attempt by the worker that records it, as ``claim`` would take it;
    the one transaction writes and claims it."""
    notification.attempts, notification.next_attempt_at = 1, now + timedelta(seconds=lease_seconds)
    return notification


def invoice_for_order(session, order, number_prefix):
    """The order's invoice row, created (with its number) the first time; one per order whatever the races."""
    invoice = session.scalar(select(Invoice).where(Invoice.order_id == order["id"]))
    if invoice is not None:
        return invoice
    invoice = Invoice(order_id=order["id"], customer_id=order.get("customer_id"), total=str(order["total"]),
                      currency=order.get("currency") or "USD", created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(invoice)
            session.flush()
            invoice.number = f"{number_prefix}{invoice.created_at:%Y}-{invoice.id:06d}"
            session.flush()
    except IntegrityError:  # a concurrent delivery of the same event got there first
        return session.scalar(select(Invoice).where(Invoice.order_id == order["id"]))
    return invoice


def erase_customer(session, customer_id):
    """Forget a customer's recipients and message contents (unsent ones will not go), and the names in their
    ``notification.sent`` events; their invoices are marked to be re-issued without the name. Returns the
    ``(order_id, storage_key)`` of each such invoice."""
    mine = Notification.customer_id == customer_id
    ids = session.scalars(select(Notification.id).where(mine)).all()
    session.execute(update(Notification).where(mine, Notification.status == PENDING).values(status=FAILED))
    session.execute(update(Notification).where(mine).values(recipient="", context="{}", last_error=None))
    forget_in_outbox(session, OutboxMessage, [str(notification_id) for notification_id in ids],
                     lambda data: data.update(recipient="") if "recipient" in data else None)
    invoices = session.scalars(select(Invoice).where(Invoice.customer_id == customer_id,
                                                     Invoice.storage_key.is_not(None))).all()
    stored = [(invoice.order_id, invoice.storage_key) for invoice in invoices]
    for invoice in invoices:
        invoice.storage_key, invoice.erased_at = None, utcnow()
    return stored
