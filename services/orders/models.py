"""The orders service's tables: orders, their lines and status history, idempotency keys, outbox, processed events.

Money is kept in integer cents; the RPC/API shape (decimal strings) is made by ``Order.to_dict``.
"""

import json
from datetime import timedelta
from decimal import Decimal

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
    select,
)
from sqlalchemy.orm import DeclarativeBase, relationship

from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin
from schemas.common import rfc3339

ID = BigInteger().with_variant(Integer, "sqlite")

# RESERVING is internal: the row exists (its id keys the stock reservation) but the order is not accepted yet.
RESERVING = "RESERVING"
PENDING_PAYMENT, PAID, PAYMENT_FAILED = "PENDING_PAYMENT", "PAID", "PAYMENT_FAILED"
SHIPPED, DELIVERED, CANCELLED = "SHIPPED", "DELIVERED", "CANCELLED"
STATUSES = (PENDING_PAYMENT, PAID, PAYMENT_FAILED, SHIPPED, DELIVERED, CANCELLED)
PAID_OR_LATER = (PAID, SHIPPED, DELIVERED)
# Stock follow-ups owed to inventory, retried by the reconciler until inventory confirms.
COMMIT, RELEASE = "commit", "release"


def cents(amount):
    return int((Decimal(amount) * 100).to_integral_value())


def money(amount_cents):
    return f"{Decimal(amount_cents) / 100:.2f}"


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_status_updated", "status", "updated_at"),)

    id = Column(ID, primary_key=True, autoincrement=True)
    customer_id = Column(ID, nullable=False, index=True)
    status = Column(String(20), nullable=False, default=RESERVING)
    currency = Column(String(3), nullable=False)
    total_cents = Column(BigInteger, nullable=False)
    shipping_address = Column(Text, nullable=False)
    payment_status = Column(String(20), nullable=False, default="pending")
    payment_reference = Column(String(64), nullable=True)
    payment_failure_reason = Column(String(64), nullable=True)
    stock_action = Column(String(10), nullable=True)
    refund_pending = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    lines = relationship("OrderLine", order_by="OrderLine.id", cascade="all, delete-orphan", lazy="selectin")
    history = relationship("StatusChange", order_by="StatusChange.id", cascade="all, delete-orphan",
                           lazy="selectin")

    def move_to(self, status, reason=None):
        self.status = status
        self.updated_at = utcnow()
        self.history.append(StatusChange(status=status, reason=reason, at=self.updated_at))

    def to_dict(self, public_base_url=""):
        payment = {"status": self.payment_status}
        if self.payment_reference:
            payment["reference"] = self.payment_reference
        if self.payment_failure_reason:
            payment["failure_reason"] = self.payment_failure_reason
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "status": self.status,
            "items": [line.to_dict() for line in self.lines],
            "total": money(self.total_cents),
            "currency": self.currency,
            "shipping_address": json.loads(self.shipping_address),
            "payment": payment,
            "invoice_url": f"{public_base_url}/orders/{self.id}/invoice" if self.status in PAID_OR_LATER else None,
            "history": [change.to_dict() for change in self.history],
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


class OrderLine(Base):
    __tablename__ = "order_lines"

    id = Column(ID, primary_key=True, autoincrement=True)
    order_id = Column(ID, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True)
    product_id = Column(ID, nullable=False)
    sku = Column(String(64), nullable=False)
    name = Column(String(255), nullable=False)
    unit_price_cents = Column(BigInteger, nullable=False)
    quantity = Column(Integer, nullable=False)
    line_total_cents = Column(BigInteger, nullable=False)

    def to_dict(self):
        return {"product_id": self.product_id, "sku": self.sku, "name": self.name,
                "unit_price": money(self.unit_price_cents), "quantity": self.quantity,
                "line_total": money(self.line_total_cents)}


class StatusChange(Base):
    __tablename__ = "order_status_history"

    id = Column(ID, primary_key=True, autoincrement=True)
    order_id = Column(ID, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True)
    status = Column(String(20), nullable=False)
    reason = Column(String(255), nullable=True)
    at = Column(DateTime, nullable=False, default=utcnow)

    def to_dict(self):
        change = {"status": self.status, "at": rfc3339(self.at)}
        if self.reason:
            change["reason"] = self.reason
        return change


class IdempotencyKey(Base):
    """(customer, key) -> the order it created; the unique constraint is what makes concurrent replays safe."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("customer_id", "key", name="uq_idempotency_customer_key"),)

    id = Column(ID, primary_key=True, autoincrement=True)
    customer_id = Column(ID, nullable=False)
    key = Column(String(255), nullable=False)
    order_id = Column(ID, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    created_at = Column(DateTime, nullable=False, default=utcnow)


def locked_order(session, order_id):
    """The order row, locked for the rest of the transaction (MySQL; SQLite's BEGIN IMMEDIATE locks already)."""
    return session.scalars(select(Order).where(Order.id == order_id).with_for_update()).one_or_none()


def order_for_key(session, customer_id, key):
    return session.scalars(
        select(Order).join(IdempotencyKey, IdempotencyKey.order_id == Order.id)
        .where(IdempotencyKey.customer_id == customer_id, IdempotencyKey.key == key)
    ).one_or_none()


def page_of_orders(session, customer_id, status, page, page_size):
    query = select(Order).where(Order.status != RESERVING)
    if customer_id is not None:
        query = query.where(Order.customer_id == customer_id)
    if status is not None:
        query = query.where(Order.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    orders = session.scalars(query.order_by(Order.id.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    return orders, total


def stale_ids(session, status, older_than_seconds, limit=100):
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return session.scalars(
        select(Order.id).where(Order.status == status, Order.updated_at < cutoff).order_by(Order.id).limit(limit)
    ).all()


def unsettled_ids(session, older_than_seconds, limit=100):
    """Orders that still owe inventory a commit/release or the customer a refund."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return session.scalars(
        select(Order.id).where((Order.stock_action.is_not(None)) | (Order.refund_pending.is_(True)))
        .where(Order.updated_at < cutoff).order_by(Order.id).limit(limit)
    ).all()
