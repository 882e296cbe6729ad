"""Order shapes: what placing, listing, cancelling and shipping orders accept, and the order they answer.

``OrderStatus`` and ``PaymentStatus`` are the one definition of an order's statuses (API.md "Orders"): the orders
service's aggregate, the gateway and the OpenAPI document all take them from here (``schemas`` imports nothing
above it, so every layer may).
"""

from enum import StrEnum

from marshmallow import Schema, fields
from marshmallow.validate import Length, OneOf, Range

from schemas.common import Money, PaginationSchema, Timestamp, Trimmed, paginated


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


class PaymentStatus(StrEnum):
    """An order's ``payment.status``: what the shop holds of the customer's money."""

    PENDING = "pending"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"
    VOIDED = "voided"
    REFUNDED = "refunded"


ORDER_STATUSES = tuple(OrderStatus)
ADMIN_STATUS_STEPS = (OrderStatus.SHIPPED, OrderStatus.DELIVERED)
PAYMENT_STATUSES = tuple(PaymentStatus)
MAX_ID = 2**63 - 1
MAX_QUANTITY = 1000
MAX_LINES = 100
IDEMPOTENCY_KEY_MAX = 255


class OrderItemInputSchema(Schema):
    product_id = fields.Integer(required=True, strict=True, validate=Range(min=1, max=MAX_ID))
    quantity = fields.Integer(required=True, strict=True, validate=Range(min=1, max=MAX_QUANTITY))


class AddressSchema(Schema):
    name = Trimmed(required=True, validate=Length(min=1, max=200))
    line1 = Trimmed(required=True, validate=Length(min=1, max=200))
    line2 = Trimmed(allow_none=True, validate=Length(max=200))
    city = Trimmed(required=True, validate=Length(min=1, max=100))
    postal_code = Trimmed(required=True, validate=Length(min=1, max=20))
    country = Trimmed(required=True, validate=Length(min=2, max=60))


class OrderCreateSchema(Schema):
    items = fields.List(fields.Nested(OrderItemInputSchema), required=True,
                        validate=Length(min=1, max=MAX_LINES))
    shipping_address = fields.Nested(AddressSchema, required=True)
    payment_token = Trimmed(required=True, validate=Length(min=1, max=100))


class OrderQuerySchema(PaginationSchema):
    status = fields.String(validate=OneOf(ORDER_STATUSES))
    customer_id = fields.Integer(validate=Range(min=1, max=MAX_ID))


class OrderStatusChangeSchema(Schema):
    status = fields.String(required=True, validate=OneOf(ADMIN_STATUS_STEPS))


class OrderCancelSchema(Schema):
    reason = Trimmed(validate=Length(max=200))


class OrderLineSchema(Schema):
    product_id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    unit_price = Money()
    quantity = fields.Integer()
    line_total = Money()


class PaymentStateSchema(Schema):
    status = fields.String(validate=OneOf(PAYMENT_STATUSES))
    reference = fields.String()
    failure_reason = fields.String()


class StatusChangeSchema(Schema):
    status = fields.String(validate=OneOf(ORDER_STATUSES))
    at = Timestamp()
    reason = fields.String()


class OrderSchema(Schema):
    id = fields.Integer()
    customer_id = fields.Integer()
    status = fields.String(validate=OneOf(ORDER_STATUSES))
    items = fields.List(fields.Nested(OrderLineSchema))
    total = Money()
    currency = fields.String()
    shipping_address = fields.Nested(AddressSchema)
    payment = fields.Nested(PaymentStateSchema)
    invoice_url = fields.String(allow_none=True)
    history = fields.List(fields.Nested(StatusChangeSchema))
    created_at = Timestamp()
    updated_at = Timestamp()


OrderPageSchema = paginated(OrderSchema)
