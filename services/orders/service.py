"""The orders service: places orders and runs their payment saga, commanding ``payments`` over RPC.

RPC (dicts in and out; errors from ``common.errors``):

- ``create_order(customer_id, items, shipping_address, payment_token, idempotency_key=None)``
  -> ``{"order": order, "created": bool}``. Prices from ``products.get_products``, stock reserved through
  ``inventory.reserve_stock`` (``Conflict(insufficient_stock)`` passes through), ``NotFound(product_not_found)``
  names unknown or deleted products. The same ``(customer_id, idempotency_key)`` returns the first order with
  ``created`` False.
- ``get_order(order_id)`` (``NotFound(order_not_found)``), ``list_orders(customer_id=None, status=None, page=1,
  page_size=20)`` -> ``{items, page, page_size, total}``; ``order_summary(recent=5)`` the admin overview.
- ``cancel_order(order_id, reason=None)``: ``PENDING_PAYMENT``/``PAID`` -> ``CANCELLED``, stock released, the
  payment refunded or voided; ``Conflict(illegal_transition)`` once shipped or failed; cancelling twice is a repeat.
- ``change_status(order_id, status)``: ``PAID`` -> ``SHIPPED`` (the payment captured) -> ``DELIVERED`` only
  (``Conflict(illegal_transition)``).

Events (outbox, data = the order dict): ``order.created``, ``order.paid``, ``order.payment_failed``,
``order.cancelled``, ``order.status_changed``. The saga's next step after acceptance runs off its own
``order.created``: the customer's request does not wait for the provider, and a crash in between loses nothing.
The state machine is ``services.orders.models.Order``; a timer reconciles what the saga left open.
Accounts' ``user.erased``: the customer's orders forget their shipping addresses (lines and totals stay).
"""

import json
import logging

from nameko import config
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from common.correlation import CorrelationId
from common.db import Database
from common.errors import Conflict, DependencyUnavailable, DomainError, NotFound, ValidationFailed
from common.events import domain_event_handler
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import ServiceRpc, rpc
from common.timers import config_timer, wait_for
from common.validation import load, load_id
from schemas.common import page_of
from schemas.orders import IDEMPOTENCY_KEY_MAX, OrderCreateSchema, OrderQuerySchema, OrderStatus
from schemas.payments import PROVIDER_UNAVAILABLE
from services.orders.models import (
    PENDING_PAYMENT,
    RESERVING,
    Base,
    IdempotencyKey,
    Order,
    OrderLine,
    OutboxMessage,
    PaymentAction,
    StatusChange,
    StockAction,
    erase_customer,
    free_key,
    locked_order,
    order_alone,
    order_for_key,
    order_summary,
    page_of_orders,
    stale_ids,
    stock_moved,
    unsettled_ids,
)
from services.orders.pricing import merged_items, money, priced_lines

log = logging.getLogger(__name__)

REPLAY_ATTEMPTS = 3


class OrdersService(Operational):
    name = "orders"

    db = Database(Base)
    outbox = Outbox(OutboxMessage)
    products = ServiceRpc("products")
    inventory = ServiceRpc("inventory")
    payments = ServiceRpc("payments")
    correlation = CorrelationId()
    metrics = Metrics()

    @rpc
    def create_order(self, customer_id, items, shipping_address, payment_token, idempotency_key=None):
        request = self._validated(customer_id, items, shipping_address, payment_token, idempotency_key)
        priced = None
        for _ in range(REPLAY_ATTEMPTS):
            if idempotency_key and (first := self._keyed_order(request["customer_id"], idempotency_key)):
                return {"order": first, "created": False}
            priced = priced or priced_lines(request["items"], self.products.get_products(
                [item["product_id"] for item in request["items"]]))
            order = self._insert_reserving(request, priced, idempotency_key)
            if order is not None:
                return {"order": self._reserve_and_accept(order, request["payment_token"]), "created": True}
        raise Conflict("Another request with this Idempotency-Key is still being processed.",
                       code="idempotency_key_in_use")

    @rpc(read_only=True)
    def get_order(self, order_id):
        with self.db.get_session() as session:
            return self._dict(self._visible(session, order_id))

    @rpc(read_only=True)
    def list_orders(self, customer_id=None, status=None, page=1, page_size=20):
        query = load(OrderQuerySchema(), {key: value for key, value in (
            ("customer_id", customer_id), ("status", status), ("page", page), ("page_size", page_size))
            if value is not None})
        with self.db.get_session() as session:
            orders, total = page_of_orders(session, query.get("customer_id"), query.get("status"),
                                           query["page"], query["page_size"])
            return page_of([self._dict(order) for order in orders], query["page"], query["page_size"], total)

    @rpc(read_only=True)
    def order_summary(self, recent=5):
        """The admin overview: ``{by_status: {status: n}, revenue: [{currency, amount, orders}], recent: [order]}``."""
        recent = max(1, min(int(recent), 50))
        with self.db.get_session() as session:
            counts, takings, newest = order_summary(session, recent)
            return {"by_status": {status: counts.get(status, 0) for status in OrderStatus},
                    "revenue": [{"currency": currency, "amount": money(cents or 0), "orders": count}
                                for currency, cents, count in takings],
                    "recent": [self._dict(order) for order in newest]}

    @rpc
    def cancel_order(self, order_id, reason=None):
        self._settle(order_id, self._change(order_id, lambda order: order.cancel(reason or "cancelled")))
        return self.get_order(order_id)

    @rpc
    def change_status(self, order_id, status):
        if status not in tuple(OrderStatus):
            raise ValidationFailed("Unknown status.", {"status": [f"Must be one of {', '.join(OrderStatus)}."]})
        self._settle(order_id, self._change(order_id, lambda order: order.advance_to(status)))
        return self.get_order(order_id)

    @domain_event_handler("orders", "order.created")
    def request_payment(self, envelope):
        self._authorize(load_id(envelope.get("aggregate_id"), "aggregate_id"))

    @domain_event_handler("accounts", "user.erased")
    def forget_customer(self, envelope):
        with self.db.get_session() as session:
            erase_customer(session, load_id(envelope["data"]["id"], "id"))

    @config_timer("ORDERS_RECONCILE_INTERVAL_SECONDS", default=5.0)
    def reconcile(self):
        """Close what the saga left open: abandoned reservations, unanswered payments, owed stock and payment moves."""
        with self.db.get_session() as session:
            abandoned = stale_ids(session, RESERVING, float(config.get("ORDERS_RESERVATION_TIMEOUT_SECONDS", 60)))
            overdue = stale_ids(session, PENDING_PAYMENT, float(config.get("PAYMENT_PENDING_TIMEOUT_SECONDS", 60)))
            unsettled = unsettled_ids(session, float(config.get("ORDERS_SETTLE_RETRY_SECONDS", 5)))
        for order_id in abandoned:
            self._guarded(self._abandon, order_id)
        for order_id in overdue:
            self._guarded(self._resolve_overdue, order_id)
        for order_id in unsettled:
            self._guarded(self._settle, order_id)

    # --- placing an order ---------------------------------------------------------------------------------------

    def _validated(self, customer_id, items, shipping_address, payment_token, idempotency_key):
        customer_id = load_id(customer_id, "customer_id")
        if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                                and 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX):
            raise ValidationFailed("Invalid Idempotency-Key.", {"idempotency_key": ["1-255 characters."]})
        request = load(OrderCreateSchema(), {"items": items, "shipping_address": shipping_address,
                                             "payment_token": payment_token})
        return {**request, "customer_id": customer_id, "items": merged_items(request["items"])}

    def _insert_reserving(self, request, priced, idempotency_key):
        """The order's row, not yet accepted: its id keys the stock reservation. None if the key is taken.

        Returns the order as written, detached with its lines and (empty) history loaded, so accepting it needs
        no second read.
        """
        lines, currency = priced
        try:
            with self.db.Session(expire_on_commit=False, close_on_exit=True) as session:
                order = Order(customer_id=request["customer_id"], status=RESERVING, currency=currency,
                              total_cents=sum(line["line_total_cents"] for line in lines),
                              shipping_address=json.dumps(request["shipping_address"]),
                              lines=[OrderLine(**line) for line in lines], history=[])
                session.add(order)
                session.flush()
                if idempotency_key:
                    session.add(IdempotencyKey(customer_id=order.customer_id, key=idempotency_key, order_id=order.id))
                    session.flush()
            return order
        except IntegrityError:
            if idempotency_key:
                return None
            raise

    def _keyed_order(self, customer_id, key):
        """The order this key created, once it is accepted; None if there is none (or its creation failed)."""
        def settled():
            with self.db.get_session() as session:
                order = order_for_key(session, customer_id, key)
                if order is None:
                    return {"order": None}
                return None if order.status == RESERVING else {"order": self._dict(order)}

        outcome = wait_for(settled, timeout=float(config.get("ORDERS_REPLAY_WAIT_SECONDS", 15)))
        if outcome is None:
            raise Conflict("The first request with this Idempotency-Key is still being processed.",
                           code="idempotency_key_in_use")
        return outcome["order"]

    def _reserve_and_accept(self, order, payment_token):
        try:
            self.inventory.reserve_stock(order.id, [{"product_id": line.product_id, "quantity": line.quantity}
                                                    for line in order.lines])
        except DependencyUnavailable:
            self._guarded(self._abandon, order.id)  # no answer: the reservation may be made, or still be coming
            raise
        except DomainError:
            self._delete_reserving(order.id)  # refused, all or nothing: nothing is held
            raise
        try:
            return self._accept(order, payment_token)
        except Exception:
            self._guarded(self._abandon, order.id)
            raise

    def _accept(self, order, payment_token):
        """RESERVING -> PENDING_PAYMENT in one conditional UPDATE (the reconciler may have abandoned it meanwhile).

        ``order`` is the detached row ``_insert_reserving`` wrote; nothing else changes a RESERVING order, so the
        document is built from it instead of read back.
        """
        with self.db.get_session() as session:
            event_type = order.accept(payment_token)
            accepted = session.execute(
                update(Order).where(Order.id == order.id, Order.status == RESERVING, Order.stock_action.is_(None))
                .values(status=order.status, payment_token=order.payment_token, updated_at=order.updated_at)
                .execution_options(synchronize_session=False))
            if accepted.rowcount != 1:
                raise DependencyUnavailable("The order was abandoned while stock was being reserved; try again.")
            change = order.history[-1]
            session.add(StatusChange(order_id=order.id, status=change.status, reason=change.reason, at=change.at))
            order_dict = self._dict(order)
            self.outbox.add(session, event_type, order.id, order_dict)
            return order_dict

    def _abandon(self, order_id):
        """Give the stock of an order that was never accepted back. The order is fenced first (``Order.abandon``),
        so accepting it cannot win after its stock went back; and the release goes out even when the row is gone,
        because a reservation that landed late belongs to no order."""
        with self.db.get_session() as session:
            order = locked_order(session, order_id)
            if order is not None and not order.abandon():
                return  # accepted meanwhile: it keeps its stock
            free_key(session, order_id)  # its customer's retry must not wait for this order: it never will be
        self.inventory.release_stock(order_id)
        self._delete_reserving(order_id)

    def _delete_reserving(self, order_id):
        with self.db.get_session() as session:
            order = locked_order(session, order_id)
            if order is not None and order.status == RESERVING:
                session.delete(order)

    # --- the payment saga ---------------------------------------------------------------------------------------

    def _authorize(self, order_id):
        """Ask the provider to authorise the order's total; an order that no longer waits for it is left alone."""
        with self.db.get_session() as session:
            order = order_alone(session, order_id)
            request = order.payment_request() if order is not None else None
        if request is None:
            return
        try:
            payment = self.payments.authorize_payment(**request)
        except DependencyUnavailable as exc:
            if exc.code != PROVIDER_UNAVAILABLE:
                raise  # payments itself did not answer: the event comes back
            log.warning("order %s: no answer from the payment provider; left to the reconciler", order_id)
            return
        self._settle(order_id, self._change(order_id, lambda order: order.record_authorization(payment)))

    def _resolve_overdue(self, order_id):
        """Ask the provider what really happened before timing the order out.

        The order's fate is recorded first, under its lock, and only then is a late charge fenced off (the release
        it owes: refund, or void the key): an authorisation that lands meanwhile has either made the order PAID
        already, and nothing is voided behind its back, or finds it failed and is refunded.
        """
        try:
            payment = self.payments.get_payment(order_id)
        except DependencyUnavailable:
            payment = None  # the provider is down: the customer has waited long enough
        self._settle(order_id, self._change(order_id, lambda order: order.resolve_overdue(payment)))

    def _settle(self, order_id, owed=None):
        """Carry out what the order owes inventory and the provider (``owed``: as ``_change`` left it; else read);
        the reconciler retries what fails here."""
        if owed is None:
            with self.db.get_session() as session:
                owed = session.execute(select(Order.stock_action, Order.payment_action)
                                       .where(Order.id == order_id)).first() or (None, None)
        stock_action, payment_action = owed
        if stock_action:
            self._guarded(self._move_stock, order_id, StockAction(stock_action))
        if payment_action == PaymentAction.RELEASE:
            self._guarded(self._release_payment, order_id)
        elif payment_action == PaymentAction.CAPTURE:
            self._guarded(self._capture_payment, order_id)

    def _move_stock(self, order_id, action):
        try:
            (self.inventory.commit_stock if action == StockAction.COMMIT else self.inventory.release_stock)(order_id)
        except (NotFound, Conflict) as exc:  # nothing left to move: e.g. a cancel released it first
            log.info("order %s: %s of stock skipped: %s", order_id, action, exc.code)
        with self.db.get_session() as session:
            stock_moved(session, order_id, action)

    def _release_payment(self, order_id):
        payment = self.payments.refund_payment(order_id)
        self._change(order_id, lambda order: order.record_release(payment))

    def _capture_payment(self, order_id):
        try:
            payment = self.payments.capture_payment(order_id)
        except Conflict as exc:  # refunded or voided meanwhile: nothing to capture, and retrying cannot change it
            log.error("order %s shipped but its payment cannot be captured: %s", order_id, exc)
            payment = None
        self._change(order_id, lambda order: order.record_capture(payment))

    # --- helpers ------------------------------------------------------------------------------------------------

    def _change(self, order_id, step):
        """Apply ``step`` to the locked order and write the event it records, in one transaction; returns what the
        order then owes, ``(stock_action, payment_action)``."""
        with self.db.get_session() as session:
            order = self._visible(session, order_id, lock=True)
            event_type = step(order)
            if event_type:
                self.outbox.add(session, event_type, order.id, self._dict(order))
            return order.stock_action, order.payment_action

    def _guarded(self, step, *args):
        try:
            step(*args)
        except Exception:
            log.warning("%s%s failed; the reconciler retries it", step.__name__, args, exc_info=True)

    @staticmethod
    def _visible(session, order_id, lock=False):
        order_id = load_id(order_id, "order_id")
        order = locked_order(session, order_id) if lock else session.get(Order, order_id)
        if order is None or order.status == RESERVING:
            raise NotFound(f"Order {order_id} not found.", {"order_id": order_id}, code="order_not_found")
        return order

    @staticmethod
    def _dict(order):
        return order.to_dict(config.get("PUBLIC_BASE_URL", "").rstrip("/"))
