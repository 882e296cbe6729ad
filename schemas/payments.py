"""Payment shapes: what the ``payments`` service answers and states in its ``payment.*`` events.

``ChargeStatus`` is the provider's view of one payment (protos/payment.proto ``PaymentStatus``, lower-cased); an
order's own ``payment.status`` is ``schemas.orders.PaymentStatus``.
"""

from enum import StrEnum

from marshmallow import Schema, fields
from marshmallow.validate import OneOf

from schemas.common import Money


class ChargeStatus(StrEnum):
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"


CHARGED = (ChargeStatus.AUTHORIZED, ChargeStatus.CAPTURED)


class PaymentSchema(Schema):
    """A payment as ``payments`` answers it and as ``payment.*`` events carry it."""

    order_id = fields.Integer(required=True)
    status = fields.String(required=True, validate=OneOf(tuple(ChargeStatus)))
    reference = fields.String()
    failure_reason = fields.String()
    amount = Money()
    currency = fields.String()

# The error code of ``DependencyUnavailable`` when the provider itself (not the payments service) cannot answer.
PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
