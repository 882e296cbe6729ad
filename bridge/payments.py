"""The ``payments`` service: the saga's link to the gRPC payment provider.

For every ``order.created`` it authorises the order's total (idempotency key = the order id, deadline
``PAYMENT_TIMEOUT_SECONDS``) and dispatches ``payment.authorized`` or ``payment.failed``; when an order is shipped
(``order.status_changed`` to ``SHIPPED``) it captures the authorisation, so the shop is paid for what it sent, and
dispatches ``payment.captured`` (a provider that cannot be reached gets the event again until it answers). It has
no database: the AMQP message is acked only after the event is dispatched, so a crash redelivers it and the
idempotent Authorize gives the same answer again. A provider that is down or too slow gets no verdict here: the
orders reconciler asks ``get_payment`` later and times the order out if nothing was authorised.

RPC (payment dicts ``{order_id, status, reference, failure_reason, amount, currency}``, status one of
``authorized | declined | captured | voided | refunded``):
- ``get_payment(order_id)`` -> payment or None; ``DependencyUnavailable`` when the provider cannot be reached.
- ``void_payment(order_id)`` -> payment: cancels an authorisation, or fences the key so none can happen later.
- ``refund_payment(order_id)`` -> payment or None: refunds a charged payment (dispatching ``payment.refunded``),
  voids anything else, so the customer ends up not charged.
"""

import logging

from grpc import StatusCode
from nameko import config
from nameko.events import EventDispatcher
from nameko_grpc.errors import GrpcError

from common.correlation import CorrelationId
from common.errors import Conflict, DependencyUnavailable
from common.events import domain_event_handler, make_envelope
from common.health import Operational
from common.metrics import Metrics, count_domain_event
from common.rpc import rpc
from payment_provider.client import PaymentProviderClient

log = logging.getLogger(__name__)

messages = PaymentProviderClient.messages
UNREACHABLE = (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED, StatusCode.CANCELLED)
SHIPPED = "SHIPPED"


class PaymentsService(Operational):
    name = "payments"

    provider = PaymentProviderClient()
    dispatch = EventDispatcher()
    correlation = CorrelationId()
    metrics = Metrics()

    @domain_event_handler("orders", "order.created")
    def authorize_payment(self, envelope):
        order = envelope["data"]
        request = messages.AuthorizeRequest(idempotency_key=str(order["id"]), amount=order["total"],
                                            currency=order["currency"], token=order.get("payment_token", ""))
        try:
            payment = self._call("Authorize", request)
        except DependencyUnavailable:
            log.warning("order %s: no answer from the payment provider; left to the reconciler", order["id"])
            return
        except GrpcError as exc:
            if exc.code != StatusCode.INVALID_ARGUMENT:
                log.error("order %s: the payment provider failed (%s); left to the reconciler", order["id"], exc.code)
                return
            payment = {"order_id": order["id"], "status": "declined", "reference": "",
                       "failure_reason": "invalid_payment_request", "amount": order["total"],
                       "currency": order["currency"]}
        if payment["status"] in ("authorized", "captured"):
            self._publish("payment.authorized", payment)
        else:
            reason = payment["failure_reason"] or payment["status"]
            self._publish("payment.failed", {**payment, "failure_reason": reason, "reason": reason})

    @domain_event_handler("orders", "order.status_changed")
    def capture_payment(self, envelope):
        order = envelope["data"]
        if order.get("status") != SHIPPED:
            return
        try:
            payment = self._call("Capture", self._key(order["id"]))
        except Conflict as exc:  # refunded or voided meanwhile: nothing to capture, and retrying cannot change it
            log.error("order %s shipped but its payment cannot be captured: %s", order["id"], exc)
            return
        self._publish("payment.captured", payment)

    @rpc
    def get_payment(self, order_id):
        try:
            return self._call("GetPayment", self._key(order_id))
        except GrpcError as exc:
            if exc.code == StatusCode.NOT_FOUND:
                return None
            raise

    @rpc
    def void_payment(self, order_id):
        return self._call("Void", self._key(order_id))

    @rpc
    def refund_payment(self, order_id):
        payment = self.get_payment(order_id)
        if payment is None or payment["status"] not in ("authorized", "captured", "refunded"):
            return self.void_payment(order_id)
        if payment["status"] != "refunded":
            payment = self._call("Refund", self._key(order_id))
            self._publish("payment.refunded", payment)
        return payment

    def _call(self, method, request):
        """One provider call as a payment dict; unreachable or too slow is ``DependencyUnavailable``."""
        timeout = float(config.get("PAYMENT_TIMEOUT_SECONDS") or 5)
        try:
            reply = getattr(self.provider, method)(request, timeout=timeout)
        except GrpcError as exc:
            if exc.code in UNREACHABLE:
                raise DependencyUnavailable(f"payment provider: {exc.message}",
                                            code="payment_provider_unavailable") from None
            if exc.code == StatusCode.FAILED_PRECONDITION:
                raise Conflict(exc.message, code="payment_state_conflict") from None
            raise
        return {"order_id": int(reply.idempotency_key), "status": messages.PaymentStatus.Name(reply.status).lower(),
                "reference": reply.reference, "failure_reason": reply.failure_reason, "amount": reply.amount,
                "currency": reply.currency}

    def _publish(self, event_type, payment):
        self.dispatch(event_type, make_envelope(event_type, payment["order_id"], payment, source=self.name,
                                                correlation_id=self.correlation.id))
        count_domain_event(self.name, event_type)

    @staticmethod
    def _key(order_id):
        return messages.PaymentRequest(idempotency_key=str(order_id))
