"""Inventory: how much of each product is on hand, and how much orders hold.

RPC (see docs/architecture.md): ``get_stock``, ``get_stock_levels``, ``low_stock(limit=20)``, ``set_stock``,
``adjust_stock``, ``reserve_stock``, ``commit_stock``, ``release_stock``. Stock is ``{product_id, on_hand, reserved,
available, low_stock_threshold}``; a reservation is ``{order_id, status, items: [{product_id, quantity}]}``.
Events (outbox, aggregate = product): ``stock.updated|reserved|released|committed``, and ``stock.low`` once each
time ``available`` drops below the product's threshold.
"""

import random

import eventlet
from sqlalchemy.exc import IntegrityError, OperationalError

from common.correlation import CorrelationId
from common.db import Database
from common.errors import DependencyUnavailable, NotFound, ValidationFailed
from common.events import domain_event_handler
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import rpc
from common.validation import load, load_id
from schemas.inventory import OrderReferenceSchema, ReserveSchema, StockAdjustmentSchema, StockUpdateSchema
from services.inventory import ledger
from services.inventory.models import RELEASED, RESERVED, Base, OutboxMessage, ProcessedEvent

ATTEMPTS = 8
RETRYABLE = (IntegrityError, OperationalError, ledger.ConcurrentChange)


class InventoryService(Operational):
    name = "inventory"

    db = Database(Base, handled_events=ProcessedEvent, session_options={"expire_on_commit": False})
    outbox = Outbox(OutboxMessage)
    correlation = CorrelationId()
    metrics = Metrics()

    @rpc(read_only=True)
    def get_stock(self, product_id):
        with self.db.get_session() as session:
            stock = ledger.find_stock(session, load_id(product_id, "product_id"))
            if stock is None:
                raise NotFound(f"No stock for product {product_id}.", code="stock_not_found")
            return stock_view(stock)

    @rpc(read_only=True)
    def get_stock_levels(self, product_ids, with_version=False):
        ids = [load_id(product_id, "product_ids") for product_id in product_ids]
        view = stock_event if with_version else stock_view
        with self.db.get_session() as session:
            return [view(stock) for stock in ledger.stock_levels(session, ids)]

    @rpc(read_only=True)
    def low_stock(self, limit=20):
        """The levels below their threshold, the emptiest first (at most ``limit``, 1-100)."""
        limit = max(1, min(int(limit), 100))
        with self.db.get_session() as session:
            return [stock_view(stock) for stock in ledger.low_stock(session, limit)]

    @rpc
    def set_stock(self, product_id, on_hand, low_stock_threshold=None):
        change = load(StockUpdateSchema(), {"product_id": product_id, "on_hand": on_hand,
                                                 "low_stock_threshold": low_stock_threshold})
        return self._transaction(lambda session: self._set_stock(session, **change))

    @rpc
    def adjust_stock(self, product_id, delta, reason, idempotency_key):
        """Change on hand by ``delta`` (a delivery, a count), applied once per ``idempotency_key``; -> stock with
        its ``version``."""
        change = load(StockAdjustmentSchema(), {"product_id": product_id, "delta": delta, "reason": reason,
                                                 "idempotency_key": idempotency_key})
        return self._transaction(lambda session: self._adjust_stock(session, **change))

    @rpc
    def reserve_stock(self, order_id, items):
        request = load(ReserveSchema(), {"order_id": order_id, "items": items})
        return self._transaction(lambda session: self._reserve(session, order_id, request["items"]))

    @rpc
    def commit_stock(self, order_id):
        load(OrderReferenceSchema(), {"order_id": order_id})
        return self._transaction(lambda session: self._settle(session, order_id, ledger.commit, "stock.committed"))

    @rpc
    def release_stock(self, order_id):
        load(OrderReferenceSchema(), {"order_id": order_id})
        return self._transaction(lambda session: self._settle(session, order_id, ledger.release, "stock.released"))

    @domain_event_handler("products", "product.created")
    def create_stock_for_new_product(self, envelope):
        # An infrastructure error must escape as itself, so the handler requeues the event instead of acking it.
        self._transaction(lambda session: self._create_stock(session, envelope), busy_error=None)

    def _set_stock(self, session, product_id, on_hand, low_stock_threshold):
        stock, was_low = ledger.set_stock(session, product_id, on_hand, low_stock_threshold)
        self._announce(session, "stock.updated", stock, was_low)
        return stock_view(stock)

    def _adjust_stock(self, session, product_id, delta, reason, idempotency_key):
        stock, was_low = ledger.adjust_stock(session, product_id, delta, reason, idempotency_key)
        if was_low is not None:  # None: a repeat, already announced
            self._announce(session, "stock.updated", stock, was_low, delta=delta, reason=reason)
        return stock_event(stock)

    def _reserve(self, session, order_id, items):
        held = ledger.reservations_of(session, order_key(order_id))
        if held:
            return reservation_view(order_id, held)
        reserved = ledger.reserve(session, order_key(order_id), ledger.merge_lines(items))
        for stock, quantity, was_low in reserved:
            self._announce(session, "stock.reserved", stock, was_low, order_id=order_id, quantity=quantity)
        # The rows just written, in product order (merge_lines'), without reading them back under the row locks.
        return {"order_id": order_id, "status": RESERVED,
                "items": [{"product_id": stock.product_id, "quantity": quantity} for stock, quantity, _ in reserved]}

    def _settle(self, session, order_id, settle, event_type):
        rows, changes = settle(session, order_key(order_id))
        for stock, quantity in changes:
            self._announce(session, event_type, stock, order_id=order_id, quantity=quantity)
        return reservation_view(order_id, rows)

    def _create_stock(self, session, envelope):
        product_id, initial_stock = new_product_stock(envelope["data"])
        if ledger.find_stock(session, product_id) is None:  # a set_stock may have come first
            self._announce(session, "stock.updated", ledger.add_stock(session, product_id, initial_stock))

    def _announce(self, session, event_type, stock, was_low=None, **extra):
        data = stock_event(stock, **extra)
        self.outbox.add(session, event_type, stock.product_id, data)
        if was_low is False and ledger.is_low(data["available"], data["low_stock_threshold"]):
            self.outbox.add(session, "stock.low", stock.product_id, data)

    def _transaction(self, work, busy_error=DependencyUnavailable):
        """Run ``work(session)`` in one transaction, again on a lost race or a deadlock."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.db.get_session() as session:
                    return work(session)
            except RETRYABLE as error:
                if attempt == ATTEMPTS:
                    if busy_error is None:
                        raise
                    raise busy_error("The stock database is too busy; try again.") from error
                eventlet.sleep(random.uniform(0, 0.01 * attempt))


def stock_view(stock):
    return {"product_id": stock.product_id, "on_hand": stock.on_hand, "reserved": stock.reserved,
            "available": stock.available, "low_stock_threshold": ledger.low_stock_threshold(stock)}


def stock_event(stock, **extra):
    return {**stock_view(stock), "version": stock.version, **extra}


def reservation_view(order_id, rows):
    return {"order_id": order_id, "status": rows[0].status if rows else RELEASED,
            "items": [{"product_id": row.product_id, "quantity": row.quantity} for row in rows]}


def order_key(order_id):
    return str(order_id)


def new_product_stock(product):
    try:
        product_id = load_id(product.get("id"), "id")
        initial_stock = int(product.get("initial_stock") or 0)
    except (TypeError, ValueError):
        raise ValidationFailed("product.created without a usable id or initial_stock.") from None
    return product_id, max(initial_stock, 0)


