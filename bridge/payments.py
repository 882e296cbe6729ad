"""The ``payments`` service: the saga's link to the gRPC payment provider, commanded by ``orders`` over RPC.

``orders`` runs the saga (docs/orders.md): it asks here to authorise, capture, refund or void, and records the
answer on the order. Every answer that changes money is also stated as a fact, ``payment.authorized|failed|
captured|refunded``, for downstream systems (Kafka); nothing in the shop reacts to those events. Each call is
idempotent at the provider (idempotency key = the order id), and so are the facts: an event's id is derived from the
order and the event type, so a repeated answer is the same event again and consumers drop it. It has no database
and keeps no payment token: the token arrives with the ``authorize_payment`` request and goes on to the provider.

RPC (payment dicts ``schemas.payments.PaymentSchema``: ``{order_id, status, reference, failure_reason, amount,
currency}``, status a ``ChargeStatus``); ``DependencyUnavailable(payment_provider_unavailable)`` whenever the
provider cannot be reached or does not answer within ``PAYMENT_TIMEOUT_SECONDS``:
- ``authorize_payment(order_id, amount, currency, token)`` -> payment (``authorized`` or ``declined``).
- ``capture_payment(order_id)`` -> payment; ``Conflict(payment_state_conflict)`` once refunded or voided.
- ``get_payment(order_id)`` -> payment or None.
- ``void_payment(order_id)`` -> payment: cancels an authorisation, or fences the key so none can happen later.
- ``refund_payment(order_id)`` -> payment: refunds a charged payment, voids anything else, so the customer ends up
  not charged.
"""

import logging
import uuid

from grpc import StatusCode
from nameko import config
from nameko_grpc.errors import GrpcError

from common import tracing
from common.correlation import CorrelationId
from common.errors import Conflict, DependencyUnavailable
from common.events import EventDispatcher, make_envelope
from common.health import Operational
from common.metrics import Metrics, count_domain_event
from common.rpc import rpc
from common.validation import load_id
from payment_provider.client import PaymentProviderClient
from schemas.payments import CHARGED, PROVIDER_UNAVAILABLE, ChargeStatus

log = logging.getLogger(__name__)

messages = PaymentProviderClient.messages
UNREACHABLE = (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED, StatusCode.CANCELLED)
GRPC_SERVICE = "pos.payment.v1.PaymentProvider"
EVENT_IDS = uuid.UUID("8d7f6c0e-3f4b-5a59-9d1e-7f0c2b6a4e11")  # namespace of the payment facts' event ids


class PaymentsService(Operational):
    name = "payments"

    provider = PaymentProviderClient()
    dispatch = EventDispatcher()
    correlation = CorrelationId()
    metrics = Metrics()

    @rpc
    def authorize_payment(self, order_id, amount, currency, token):
        order_id = load_id(order_id, "order_id")
        request = messages.AuthorizeRequest(idempotency_key=str(order_id), amount=str(amount), currency=str(currency),
                                            token=str(token))
        try:
            payment = self._call("Authorize", request)
        except GrpcError as exc:
            if exc.code != StatusCode.INVALID_ARGUMENT:
                raise
            payment = {"order_id": order_id, "status": ChargeStatus.DECLINED, "reference": "",
                       "failure_reason": "invalid_payment_request", "amount": request.amount,
                       "currency": request.currency}
        if payment["status"] in CHARGED:
            self._state("payment.authorized", payment)
        else:
            self._state("payment.failed", {**payment, "reason": payment["failure_reason"] or payment["status"]})
        return payment

    @rpc
    def capture_payment(self, order_id):
        payment = self._call("Capture", self._key(order_id))
        self._state("payment.captured", payment)
        return payment

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
        if payment is None or payment["status"] not in (*CHARGED, ChargeStatus.REFUNDED):
            return self.void_payment(order_id)
        if payment["status"] != ChargeStatus.REFUNDED:
            payment = self._call("Refund", self._key(order_id))
            self._state("payment.refunded", payment)
        return payment

    def _call(self, method, request):
        """One provider call as a payment dict; unreachable or too slow is ``DependencyUnavailable``."""
        timeout = float(config.get("PAYMENT_TIMEOUT_SECONDS") or 5)
        metadata = {}
        try:
            with tracing.outgoing(f"{GRPC_SERVICE}/{method}", metadata, attributes={
                    "rpc.system": "grpc", "rpc.service": GRPC_SERVICE, "rpc.method": method}):
                reply = getattr(self.provider, method)(request, timeout=timeout, metadata=list(metadata.items()))
        except GrpcError as exc:
            if exc.code in UNREACHABLE:
                raise DependencyUnavailable(f"payment provider: {exc.message}", code=PROVIDER_UNAVAILABLE) from None
            if exc.code == StatusCode.FAILED_PRECONDITION:
                raise Conflict(exc.message, code="payment_state_conflict") from None
            raise
        return {"order_id": int(reply.idempotency_key), "status": messages.PaymentStatus.Name(reply.status).lower(),
                "reference": reply.reference, "failure_reason": reply.failure_reason, "amount": reply.amount,
                "currency": reply.currency}

    def _state(self, event_type, payment):
        order_id = payment["order_id"]
        event_id = str(uuid.uuid5(EVENT_IDS, f"{event_type}:{order_id}"))
        self.dispatch(event_type, make_envelope(event_type, order_id, payment, source=self.name,
                                                correlation_id=self.correlation.id, event_id=event_id))
        count_domain_event(self.name, event_type)

    @staticmethod
    def _key(order_id):
        return messages.PaymentRequest(idempotency_key=str(load_id(order_id, "order_id")))
