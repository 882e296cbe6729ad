"""The orders service's tables, and the order aggregate: its state machine and what each step owes.

Every change of an order's status is a method of ``Order`` (``accept``, ``pay``, ``fail_payment``, ``cancel``,
``ship``, ``deliver``, and the provider's answers ``record_authorization``, ``resolve_overdue``); each refuses an
illegal step with ``Conflict(illegal_transition)`` and returns the event type it records (or None), which the service
writes to the outbox with the order. What a step leaves owed to inventory (``stock_action``) or to the payment
provider (``payment_action``) stays on the row until the service has carried it out (docs/orders.md).

Money is kept in integer cents; the RPC/API shape (decimal strings) is made by ``Order.to_dict``.
"""

import json
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, lazyload, relationship

from common.crypto import Encrypted
from common.errors import Conflict
from common.events import utcnow
from common.outbox import OutboxMessageMixin, forget_in_outbox
from schemas.common import rfc3339
from schemas.orders import OrderStatus, PaymentStatus
from schemas.payments import CHARGED, ChargeStatus
from services.orders.pricing import money

ID = BigInteger().with_variant(Integer, "sqlite")

# Internal: the row exists (its id keys the stock reservation) but the order is not accepted yet; never visible.
RESERVING = "RESERVING"
PENDING_PAYMENT, PAID, PAYMENT_FAILED = OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.PAYMENT_FAILED
SHIPPED, DELIVERED, CANCELLED = OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED
TRANSITIONS = {
    RESERVING: (PENDING_PAYMENT,),
    PENDING_PAYMENT: (PAID, PAYMENT_FAILED, CANCELLED),
    PAID: (SHIPPED, CANCELLED),
    SHIPPED: (DELIVERED,),
}
PAID_OR_LATER = (PAID, SHIPPED, DELIVERED)
PAYMENT_TIMEOUT = "payment_timeout"
ERASED_ADDRESS = "{}"  # an erased customer's orders keep their lines and totals, not where they went
# What the provider's answer to a release (refund or void) leaves of the order's payment.
AFTER_RELEASE = {ChargeStatus.REFUNDED: PaymentStatus.REFUNDED, ChargeStatus.VOIDED: PaymentStatus.VOIDED,
                 ChargeStatus.DECLINED: PaymentStatus.FAILED}


class StockAction(StrEnum):
    """Owed to inventory: the order's reservation committed (paid) or released (failed, cancelled)."""

    COMMIT = "commit"
    RELEASE = "release"


class PaymentAction(StrEnum):
    """Owed to the payment provider: capture (shipped) or release (refund or void: cancelled, a late charge)."""

    CAPTURE = "capture"
    RELEASE = "release"


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxMessageMixin, Base):
    envelope = Column(Encrypted("outbox.envelope"), nullable=False)  # order events carry the shipping address


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_status_updated", "status", "updated_at"),)

    id = Column(ID, primary_key=True, autoincrement=True)
    customer_id = Column(ID, nullable=False, index=True)
    status = Column(String(20), nullable=False, default=RESERVING)
    currency = Column(String(3), nullable=False)
    total_cents = Column(BigInteger, nullable=False)
    shipping_address = Column(Encrypted("orders.shipping_address"), nullable=False)  # JSON, with the name
    payment_status = Column(String(20), nullable=False, default=PaymentStatus.PENDING)
    payment_reference = Column(String(64), nullable=True)
    payment_failure_reason = Column(String(64), nullable=True)
    # Held only until the provider has answered the authorisation, or the order stopped waiting for it.
    payment_token = Column(Encrypted("orders.payment_token"), nullable=True)
    stock_action = Column(String(10), nullable=True)
    payment_action = Column(String(10), nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    lines = relationship("OrderLine", order_by="OrderLine.id", cascade="all, delete-orphan", lazy="selectin")
    history = relationship("StatusChange", order_by="StatusChange.id", cascade="all, delete-orphan",
                           lazy="selectin")

    # --- the state machine ---------------------------------------------------------------------------------------

    def accept(self, payment_token):
        """Stock is reserved: the order waits for its payment, holding the token until the provider has it."""
        self._move(PENDING_PAYMENT)
        self.payment_token = payment_token
        return "order.created"

    def abandon(self):
        """Its reservation failed or took too long: the order will never be accepted, and whatever stock the
        reservation holds, or makes when it lands late, is owed back. False once it is accepted (it keeps its stock)."""
        if self.status != RESERVING:
            return False
        self.stock_action = StockAction.RELEASE
        return True

    def pay(self, reference):
        self._move(PAID)
        self.payment_status, self.payment_reference = PaymentStatus.AUTHORIZED, reference or self.payment_reference
        self.stock_action, self.payment_token = StockAction.COMMIT, None
        return "order.paid"

    def fail_payment(self, reason, reference=None, release_owed=False):
        """``release_owed``: the provider held nothing final under the order's key, or could not say, so whatever
        it holds (or a late Authorize would make) gets released, by refund or void, once it answers."""
        self._move(PAYMENT_FAILED, reason)
        self.payment_status, self.payment_failure_reason = PaymentStatus.FAILED, reason
        self.payment_reference = reference or self.payment_reference
        self.stock_action, self.payment_token = StockAction.RELEASE, None
        if release_owed:
            self.payment_action = PaymentAction.RELEASE
        return "order.payment_failed"

    def cancel(self, reason):
        if self.status == CANCELLED:
            return None  # cancelling twice is a repeat, not an error
        self._move(CANCELLED, reason)
        self.stock_action, self.payment_action, self.payment_token = StockAction.RELEASE, PaymentAction.RELEASE, None
        return "order.cancelled"

    def ship(self):
        self._move(SHIPPED)
        self.payment_action = PaymentAction.CAPTURE  # the money is taken when the goods leave
        return "order.status_changed"

    def deliver(self):
        self._move(DELIVERED)
        return "order.status_changed"

    def advance_to(self, status):
        """The admin's step along the shipping path (``PATCH /orders/{id}/status``)."""
        steps = {SHIPPED: self.ship, DELIVERED: self.deliver}
        if status not in steps:
            raise self._illegal(status)
        return steps[status]()

    # --- the provider's answers ----------------------------------------------------------------------------------

    def record_authorization(self, payment):
        """The provider's answer to the authorisation (a payment dict of ``payments``)."""
        self.payment_token = None
        if self.status == PENDING_PAYMENT:
            if payment["status"] in CHARGED:
                return self.pay(payment.get("reference"))
            return self.fail_payment(payment.get("failure_reason") or payment["status"], payment.get("reference"))
        if payment["status"] in CHARGED and self.status in (PAYMENT_FAILED, CANCELLED) \
                and self.payment_status != PaymentStatus.REFUNDED:
            self.payment_action = PaymentAction.RELEASE  # a charge the order no longer wants
        return None

    def resolve_overdue(self, payment):
        """An order waited too long for its payment: ``payment`` is what the provider held when asked, or None when
        it had never heard of the order or could not be reached (the order then owes a release, which fences off a
        late Authorize)."""
        if self.status != PENDING_PAYMENT:
            return None
        if payment is None:
            return self.fail_payment(PAYMENT_TIMEOUT, release_owed=True)
        if payment["status"] in CHARGED:
            return self.pay(payment.get("reference"))
        if payment["status"] == ChargeStatus.DECLINED:
            return self.fail_payment(payment.get("failure_reason") or ChargeStatus.DECLINED, payment.get("reference"))
        return self.fail_payment(PAYMENT_TIMEOUT)

    def record_release(self, payment):
        """The provider refunded or voided whatever it held (``payment`` None: it never heard of the order)."""
        if self.payment_action == PaymentAction.RELEASE:
            self.payment_action = None
        if payment and payment["status"] in AFTER_RELEASE:
            self.payment_status = AFTER_RELEASE[payment["status"]]

    def record_capture(self, payment):
        """The provider captured the authorisation (``payment`` None: nothing left to capture, e.g. refunded)."""
        if self.payment_action == PaymentAction.CAPTURE:
            self.payment_action = None
        if payment and payment["status"] == ChargeStatus.CAPTURED and self.payment_status == PaymentStatus.AUTHORIZED:
            self.payment_status = PaymentStatus.CAPTURED

    def _move(self, status, reason=None):
        if status not in TRANSITIONS.get(self.status, ()):
            raise self._illegal(status)
        self.status = status
        self.updated_at = utcnow()
        self.history.append(StatusChange(status=status, reason=reason, at=self.updated_at))

    def _illegal(self, status):
        return Conflict(f"An order that is {self.status} cannot become {status}.",
                        {"from": self.status, "to": status}, code="illegal_transition")

    # --- what it answers -------------------------------------------------------------------------------------------

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

    def payment_request(self):
        """What ``payments.authorize_payment`` needs; None once nothing waits for an authorisation."""
        if self.status != PENDING_PAYMENT or not self.payment_token:
            return None
        return {"order_id": self.id, "amount": money(self.total_cents), "currency": self.currency,
                "token": self.payment_token}


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


def order_alone(session, order_id):
    """The order row without its lines and history (what the saga's bookkeeping reads)."""
    return session.get(Order, order_id, options=[lazyload(Order.lines), lazyload(Order.history)])


def stock_moved(session, order_id, action):
    """Inventory confirmed ``action``: the order owes it no more (unless a later step owes another)."""
    session.execute(update(Order).where(Order.id == order_id, Order.stock_action == action).values(stock_action=None))


def locked_order(session, order_id):
    """The order row, locked for the rest of the transaction (MySQL; SQLite's BEGIN IMMEDIATE locks already)."""
    return session.scalars(select(Order).where(Order.id == order_id).with_for_update()).one_or_none()


def free_key(session, order_id):
    """The idempotency key of an abandoned order names no order any more: a retry with it places a new one."""
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.order_id == order_id))


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


def order_summary(session, recent):
    """Counts by status, the takings of paid orders (paid, shipped, delivered) per currency, the newest orders."""
    counts = dict(session.execute(select(Order.status, func.count()).where(Order.status != RESERVING)
                                  .group_by(Order.status)).all())
    takings = session.execute(select(Order.currency, func.sum(Order.total_cents), func.count())
                              .where(Order.status.in_(PAID_OR_LATER)).group_by(Order.currency)
                              .order_by(Order.currency)).all()
    newest = session.scalars(select(Order).where(Order.status != RESERVING).order_by(Order.id.desc())
                             .limit(recent)).all()
    return counts, takings, newest


def stale_ids(session, status, older_than_seconds, limit=100):
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return session.scalars(
        select(Order.id).where(Order.status == status, Order.updated_at < cutoff).order_by(Order.id).limit(limit)
    ).all()


def unsettled_ids(session, older_than_seconds, limit=100):
    """Orders that still owe inventory a commit/release or the payment provider a capture/release."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return session.scalars(
        select(Order.id).where((Order.stock_action.is_not(None)) | (Order.payment_action.is_not(None)))
        .where(Order.status != RESERVING, Order.updated_at < cutoff).order_by(Order.id).limit(limit)
    ).all()


def erase_customer(session, customer_id):
    """Forget the shipping addresses (with the name) on a customer's orders and in their events not yet pruned."""
    order_ids = session.scalars(select(Order.id).where(Order.customer_id == customer_id)).all()
    session.execute(update(Order).where(Order.customer_id == customer_id).values(shipping_address=ERASED_ADDRESS))
    forget_in_outbox(session, OutboxMessage, [str(order_id) for order_id in order_ids],
                     lambda data: data.update(shipping_address={}) if "shipping_address" in data else None)
    return len(order_ids)
