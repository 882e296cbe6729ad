"""The inventory service's tables: stock per product, and what each order holds of it."""

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase

from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin

RESERVED, COMMITTED, RELEASED = "RESERVED", "COMMITTED", "RELEASED"

ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Stock(Base):
    """``available`` is ``on_hand - reserved``; the database refuses any row that would oversell."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="ck_stock_on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="ck_stock_reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="ck_stock_reserved_within_on_hand"),
    )

    product_id = Column(ID, primary_key=True, autoincrement=False)
    on_hand = Column(Integer, nullable=False, default=0)
    reserved = Column(Integer, nullable=False, default=0)
    low_stock_threshold = Column(Integer, nullable=True)  # NULL: the LOW_STOCK_THRESHOLD default
    version = Column(Integer, nullable=False, default=1)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    @property
    def available(self):
        return self.on_hand - self.reserved


class Reservation(Base):
    """One line of one order's hold on stock; (order_id, product_id) is unique, which makes reserving idempotent."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id", name="uq_reservations_order_product"),
        CheckConstraint("quantity > 0", name="ck_reservations_quantity_positive"),
        CheckConstraint("status IN ('RESERVED', 'COMMITTED', 'RELEASED')", name="ck_reservations_status"),
    )

    id = Column(ID, primary_key=True, autoincrement=True)
    order_id = Column(String(64), nullable=False)
    product_id = Column(ID, nullable=False)
    quantity = Column(Integer, nullable=False)
    status = Column(String(10), nullable=False, default=RESERVED)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)


class StockAdjustment(Base):
    """One applied ``adjust_stock``, kept by its idempotency key so a retried adjustment is applied once."""

    __tablename__ = "stock_adjustments"

    idempotency_key = Column(String(128), primary_key=True)
    product_id = Column(ID, nullable=False)
    delta = Column(Integer, nullable=False)
    reason = Column(String(200), nullable=False, default="")
    created_at = Column(DateTime, nullable=False, default=utcnow)
