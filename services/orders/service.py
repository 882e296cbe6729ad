"""The orders service: places orders, follows the payment saga, cancels and ships them.

RPC (dicts in and out; errors from ``common.errors``):

- ``create_order(customer_id, items, shipping_address, payment_token, idempotency_key=None)``
  -> ``{"order": order, "created": bool}``. Prices from ``products.get_products``, stock reserved through
  ``inventory.reserve_stock`` (``Conflict(insufficient_stock)`` passes through), ``NotFound(product_not_found)``
  names unknown or deleted products. The same ``(customer_id, idempotency_key)`` returns the first order with
  ``created`` False.
- ``get_order(order_id)`` (``NotFound(order_not_found)``), ``list_orders(customer_id=None, status=None, page=1,
  page_size=20)`` -> ``{items, page, page_size, total}``.
- ``cancel_order(order_id, reason=None)``: ``PENDING_PAYMENT``/``PAID`` -> ``CANCELLED``, stock released, a paid
  payment refunded; ``Conflict(illegal_transition)`` once shipped or failed; cancelling twice is a repeat.
- ``change_status(order_id, status)``: ``PAID`` -> ``SHIPPED`` -> ``DELIVERED`` only (``Conflict(illegal_transition)``).

Events (outbox, data = the order dict): ``order.created`` (plus ``payment_token``, for the payments service only),
``order.paid``, ``order.payment_failed``, ``order.cancelled``, ``order.status_changed``. Handles ``payments``'
``payment.authorized``, ``payment.failed``, ``payment.captured`` and ``payment.refunded``. A timer reconciles
what the saga left open.
"""

import json
import logging

from marshmallow import ValidationError
from nameko import config
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from common.correlation import CorrelationId
from common.db import Database
from common.errors import Conflict, DependencyUnavailable, DomainError, NotFound, ValidationFailed
from common.events import domain_event_handler, first_delivery
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import ServiceRpc, rpc
from schemas.orders import IDEMPOTENCY_KEY_MAX, ORDER_STATUSES, OrderCreateSchema, OrderQuerySchema
from services.orders.models import (
    CANCELLED,
    COMMIT,
    DELIVERED,
    PAID,
    PAYMENT_FAILED,
    PENDING_PAYMENT,
    RELEASE,
    RESERVING,
    SHIPPED,
    Base,
    IdempotencyKey,
    Order,
    OrderLine,
    OutboxMessage,
    ProcessedEvent,
    StatusChange,
    cents,
    locked_order,
    order_for_key,
    page_of_orders,
    stale_ids,
    unsettled_ids,
)
from services.orders.timers import config_timer, wait_for

log = logging.getLogger(__name__)

NEXT_STEPS = {PAID: SHIPPED, SHIPPED: DELIVERED}
CANCELLABLE = (PENDING_PAYMENT, PAID)
CHARGED = ("authorized", "captured")
REPLAY_ATTEMPTS = 3
PAYMENT_STATUS_AFTER_REFUND = {"refunded": "refunded", "voided": "voided", "declined": "failed"}


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
        lines = None
        for _ in range(REPLAY_ATTEMPTS):
            if idempotency_key and (first := self._keyed_order(customer_id, idempotency_key)):
                return {"order": first, "created": False}
            lines = lines or self._priced_lines(request["items"])
            order = self._insert_reserving(customer_id, request, lines, idempotency_key)
            if order is not None:
                return {"order": self._reserve_and_accept(order, lines, payment_token), "created": True}
        raise Conflict("Another request with this Idempotency-Key is still being processed.",
                       code="idempotency_key_in_use")

    @rpc
    def get_order(self, order_id):
        with self.db.get_session() as session:
            return self._dict(self._visible(session, order_id))

    @rpc
    def list_orders(self, customer_id=None, status=None, page=1, page_size=20):
        query = self._load(OrderQuerySchema(), {"customer_id": customer_id, "status": status, "page": page,
                                                "page_size": page_size})
        with self.db.get_session() as session:
            orders, total = page_of_orders(session, query.get("customer_id"), query.get("status"),
                                           query["page"], query["page_size"])
            return {"items": [self._dict(order) for order in orders], "page": query["page"],
                    "page_size": query["page_size"], "total": total}

    @rpc
    def cancel_order(self, order_id, reason=None):
        with self.db.get_session() as session:
            order = self._visible(session, order_id, lock=True)
            if order.status != CANCELLED:
                self._require_step(order, CANCELLED, allowed=order.status in CANCELLABLE)
                order.move_to(CANCELLED, reason or "cancelled")
                order.stock_action, order.refund_pending = RELEASE, True
                self.outbox.add(session, "order.cancelled", order.id, self._dict(order))
        self._settle(order_id)
        return self.get_order(order_id)

    @rpc
    def change_status(self, order_id, status):
        if status not in ORDER_STATUSES:
            raise ValidationFailed("Unknown status.", {"status": [f"Must be one of {', '.join(ORDER_STATUSES)}."]})
        with self.db.get_session() as session:
            order = self._visible(session, order_id, lock=True)
            self._require_step(order, status, allowed=NEXT_STEPS.get(order.status) == status)
            order.move_to(status)
            self.outbox.add(session, "order.status_changed", order.id, self._dict(order))
            return self._dict(order)

    @domain_event_handler("payments", "payment.authorized")
    def on_payment_authorized(self, envelope):
        data = envelope["data"]
        self._apply_payment(data["order_id"], True, data.get("reference"), None, envelope, "on_payment_authorized")

    @domain_event_handler("payments", "payment.failed")
    def on_payment_failed(self, envelope):
        data = envelope["data"]
        self._apply_payment(data["order_id"], False, data.get("reference"),
                            data.get("failure_reason") or "payment_failed", envelope, "on_payment_failed")

    @domain_event_handler("payments", "payment.refunded")
    def on_payment_refunded(self, envelope):
        with self.db.get_session() as session:
            if first_delivery(session, ProcessedEvent, envelope, "on_payment_refunded"):
                session.execute(update(Order).where(Order.id == int(envelope["data"]["order_id"]))
                                .values(payment_status="refunded"))

    @domain_event_handler("payments", "payment.captured")
    def on_payment_captured(self, envelope):
        with self.db.get_session() as session:
            if first_delivery(session, ProcessedEvent, envelope, "on_payment_captured"):
                session.execute(update(Order).where(Order.id == int(envelope["data"]["order_id"]),
                                                    Order.payment_status == "authorized")
                                .values(payment_status="captured"))

    @config_timer("ORDERS_RECONCILE_INTERVAL_SECONDS", default=5.0)
    def reconcile(self):
        """Close what the saga left open: abandoned reservations, unanswered payments, owed stock moves/refunds."""
        with self.db.get_session() as session:
            abandoned = stale_ids(session, RESERVING, float(config.get("ORDERS_RESERVATION_TIMEOUT_SECONDS", 60)))
            pending = stale_ids(session, PENDING_PAYMENT, float(config.get("PAYMENT_PENDING_TIMEOUT_SECONDS", 60)))
            unsettled = unsettled_ids(session, float(config.get("ORDERS_SETTLE_RETRY_SECONDS", 5)))
        for order_id in abandoned:
            self._guarded(self._abandon, order_id)
        for order_id in pending:
            self._guarded(self._resolve_pending_payment, order_id)
        for order_id in unsettled:
            self._guarded(self._settle, order_id)

    # --- placing an order ---------------------------------------------------------------------------------------

    def _validated(self, customer_id, items, shipping_address, payment_token, idempotency_key):
        if not isinstance(customer_id, int) or isinstance(customer_id, bool) or customer_id < 1:
            raise ValidationFailed("Invalid customer.", {"customer_id": ["Must be a positive integer."]})
        if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                                and 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX):
            raise ValidationFailed("Invalid Idempotency-Key.", {"idempotency_key": ["1-255 characters."]})
        request = self._load(OrderCreateSchema(), {"items": items, "shipping_address": shipping_address,
                                                   "payment_token": payment_token})
        merged = {}
        for item in request["items"]:
            merged[item["product_id"]] = merged.get(item["product_id"], 0) + item["quantity"]
        request["items"] = [{"product_id": pid, "quantity": quantity} for pid, quantity in merged.items()]
        return request

    def _priced_lines(self, items):
        products = {p["id"]: p for p in self.products.get_products([item["product_id"] for item in items])}
        missing = [item["product_id"] for item in items if item["product_id"] not in products]
        if missing:
            raise NotFound(f"Unknown products: {', '.join(map(str, missing))}.", {"product_ids": missing},
                           code="product_not_found")
        currencies = {products[item["product_id"]]["currency"] for item in items}
        if len(currencies) > 1:
            raise ValidationFailed("Products in one order must share a currency.",
                                   {"items": [f"Mixed currencies: {', '.join(sorted(currencies))}."]})
        return [self._line(products[item["product_id"]], item["quantity"]) for item in items]

    @staticmethod
    def _line(product, quantity):
        unit = cents(product["price"])
        return {"product_id": product["id"], "sku": product["sku"], "name": product["name"],
                "unit_price_cents": unit, "quantity": quantity, "line_total_cents": unit * quantity,
                "currency": product["currency"]}

    def _insert_reserving(self, customer_id, request, lines, idempotency_key):
        """The order's row, not yet accepted: its id keys the stock reservation. None if the key is taken.

        Returns the order as written, detached with its lines and (empty) history loaded, so accepting it needs
        no second read.
        """
        try:
            with self.db.Session(expire_on_commit=False, close_on_exit=True) as session:
                order = Order(customer_id=customer_id, status=RESERVING, currency=lines[0]["currency"],
                              total_cents=sum(line["line_total_cents"] for line in lines),
                              shipping_address=json.dumps(request["shipping_address"]), refund_pending=False,
                              lines=[OrderLine(**{k: v for k, v in line.items() if k != "currency"})
                                     for line in lines], history=[])
                session.add(order)
                session.flush()
                if idempotency_key:
                    session.add(IdempotencyKey(customer_id=customer_id, key=idempotency_key, order_id=order.id))
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

    def _reserve_and_accept(self, order, lines, payment_token):
        try:
            self.inventory.reserve_stock(order.id, [{"product_id": line["product_id"], "quantity": line["quantity"]}
                                                    for line in lines])
        except DomainError:
            self._delete_reserving(order.id)  # all or nothing: nothing is held
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
            order.move_to(PENDING_PAYMENT)
            accepted = session.execute(
                update(Order).where(Order.id == order.id, Order.status == RESERVING)
                .values(status=order.status, updated_at=order.updated_at).execution_options(synchronize_session=False))
            if accepted.rowcount != 1:
                raise DependencyUnavailable("The order was abandoned while stock was being reserved; try again.")
            change = order.history[-1]
            session.add(StatusChange(order_id=order.id, status=change.status, reason=change.reason, at=change.at))
            order_dict = self._dict(order)
            self.outbox.add(session, "order.created", order.id, {**order_dict, "payment_token": payment_token})
            return order_dict

    def _abandon(self, order_id):
        self.inventory.release_stock(order_id)
        self._delete_reserving(order_id)

    def _delete_reserving(self, order_id):
        with self.db.get_session() as session:
            order = locked_order(session, order_id)
            if order is not None and order.status == RESERVING:
                session.delete(order)

    # --- the payment saga ---------------------------------------------------------------------------------------

    def _apply_payment(self, order_id, authorized, reference, reason, envelope=None, handler=None,
                       release_owed=False):
        """``release_owed``: the provider could not say what it holds under the order's key, so whatever that is gets
        released (voided, or refunded) once it answers, by ``_settle`` and the reconciler."""
        with self.db.get_session() as session:
            if envelope is not None and not first_delivery(session, ProcessedEvent, envelope, handler):
                return
            order = locked_order(session, int(order_id))
            if order is None or order.status == RESERVING:
                log.warning("payment outcome for unknown order %s ignored", order_id)
                return
            if order.status == PENDING_PAYMENT:
                self._record_outcome(session, order, authorized, reference, reason)
                order.refund_pending = release_owed
            elif authorized and order.status in (PAYMENT_FAILED, CANCELLED) and order.payment_status != "refunded":
                order.refund_pending = True  # a charge the order no longer wants (it timed out or was cancelled)
        self._settle(int(order_id))

    def _record_outcome(self, session, order, authorized, reference, reason):
        order.payment_reference = reference or order.payment_reference
        if authorized:
            order.payment_status, order.stock_action = "authorized", COMMIT
            order.move_to(PAID)
            self.outbox.add(session, "order.paid", order.id, self._dict(order))
        else:
            order.payment_status, order.payment_failure_reason, order.stock_action = "failed", reason, RELEASE
            order.move_to(PAYMENT_FAILED, reason)
            self.outbox.add(session, "order.payment_failed", order.id, self._dict(order))

    def _resolve_pending_payment(self, order_id):
        """Ask the provider what really happened before timing the order out."""
        try:
            payment = self.payments.get_payment(order_id)
        except DependencyUnavailable:  # the provider is down: the customer has waited long enough
            self._apply_payment(order_id, False, None, "payment_timeout", release_owed=True)
            return
        if payment is None or payment["status"] not in CHARGED + ("declined",):
            payment = self.payments.void_payment(order_id)  # so a late authorisation cannot charge
        if payment["status"] in CHARGED:
            self._apply_payment(order_id, True, payment.get("reference"), None)
        elif payment["status"] == "declined":
            self._apply_payment(order_id, False, payment.get("reference"), payment.get("failure_reason"))
        else:
            self._apply_payment(order_id, False, None, "payment_timeout")

    def _settle(self, order_id):
        """Carry out what the order owes inventory and the customer; the reconciler retries what fails here."""
        with self.db.get_session() as session:
            owed = session.execute(select(Order.stock_action, Order.refund_pending).where(Order.id == order_id)).first()
            stock_action, refund = owed if owed else (None, False)
        if stock_action:
            self._guarded(self._move_stock, order_id, stock_action)
        if refund:
            self._guarded(self._refund, order_id)

    def _move_stock(self, order_id, action):
        try:
            (self.inventory.commit_stock if action == COMMIT else self.inventory.release_stock)(order_id)
        except (NotFound, Conflict) as exc:  # nothing left to move: e.g. a cancel released it first
            log.info("order %s: %s of stock skipped: %s", order_id, action, exc.code)
        with self.db.get_session() as session:
            session.execute(update(Order).where(Order.id == order_id, Order.stock_action == action)
                            .values(stock_action=None))

    def _refund(self, order_id):
        payment = self.payments.refund_payment(order_id)
        values = {"refund_pending": False}
        if payment and payment["status"] in PAYMENT_STATUS_AFTER_REFUND:
            values["payment_status"] = PAYMENT_STATUS_AFTER_REFUND[payment["status"]]
        with self.db.get_session() as session:
            session.execute(update(Order).where(Order.id == order_id).values(**values))

    # --- helpers ------------------------------------------------------------------------------------------------

    def _guarded(self, step, *args):
        try:
            step(*args)
        except Exception:
            log.warning("%s%s failed; the reconciler retries it", step.__name__, args, exc_info=True)

    @staticmethod
    def _visible(session, order_id, lock=False):
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            raise ValidationFailed("Invalid order id.", {"order_id": ["Must be an integer."]})
        order = locked_order(session, order_id) if lock else session.get(Order, order_id)
        if order is None or order.status == RESERVING:
            raise NotFound(f"Order {order_id} not found.", {"order_id": order_id}, code="order_not_found")
        return order

    @staticmethod
    def _require_step(order, status, allowed):
        if not allowed:
            raise Conflict(f"An order that is {order.status} cannot become {status}.",
                           {"from": order.status, "to": status}, code="illegal_transition")

    @staticmethod
    def _load(schema, data):
        try:
            return schema.load({key: value for key, value in data.items() if value is not None})
        except ValidationError as exc:
            raise ValidationFailed("The request is not valid.", exc.messages) from None

    @staticmethod
    def _dict(order):
        return order.to_dict(config.get("PUBLIC_BASE_URL", "").rstrip("/"))
