"""Inventory: stock levels, and reservations of stock by orders."""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

MAX_STOCK = 2**31 - 1
MAX_ORDER_LINES = 100


def _order_id(value):
    if isinstance(value, bool) or not isinstance(value, int | str) or not 0 < len(str(value)) <= 64:
        raise ValidationError("Must be an integer or a string of 1 to 64 characters.")


class StockUpdateSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    product_id = fields.Integer(required=True, validate=validate.Range(min=1))
    on_hand = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_STOCK))
    low_stock_threshold = fields.Integer(load_default=None, allow_none=True,
                                         validate=validate.Range(min=0, max=MAX_STOCK))


class StockAdjustmentSchema(Schema):
    """A change of the quantity on hand by ``delta`` (a delivery, a stock count), applied once per
    ``idempotency_key``."""

    class Meta:
        unknown = EXCLUDE

    product_id = fields.Integer(required=True, validate=validate.Range(min=1))
    delta = fields.Integer(required=True, validate=[validate.Range(min=-MAX_STOCK, max=MAX_STOCK),
                                                    validate.NoneOf([0], error="Must not be zero.")])
    reason = fields.String(load_default="", validate=validate.Length(max=200))
    idempotency_key = fields.String(required=True, validate=validate.Length(min=1, max=128))


class ReservationLineSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    product_id = fields.Integer(required=True, validate=validate.Range(min=1))
    quantity = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_STOCK))


class OrderReferenceSchema(Schema):
    order_id = fields.Raw(required=True, validate=_order_id)


class ReserveSchema(OrderReferenceSchema):
    items = fields.List(fields.Nested(ReservationLineSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_ORDER_LINES))


class StockSchema(Schema):
    product_id = fields.Integer()
    on_hand = fields.Integer()
    reserved = fields.Integer()
    available = fields.Integer()
    low_stock_threshold = fields.Integer()


class StockEventSchema(StockSchema):
    """``data`` of the ``stock.*`` events: the stock level, its version and, for a reservation's events, the order
    and the quantity it moved; for an adjustment's ``stock.updated`` (``adjust_stock``), its delta and reason."""

    product_id = fields.Integer(required=True)
    on_hand = fields.Integer(required=True, validate=validate.Range(min=0))
    reserved = fields.Integer(required=True, validate=validate.Range(min=0))
    available = fields.Integer(required=True)
    low_stock_threshold = fields.Integer(allow_none=True, validate=validate.Range(min=0))
    version = fields.Integer(required=True, validate=validate.Range(min=0))
    order_id = fields.Integer(allow_none=True)
    quantity = fields.Integer(allow_none=True)
    delta = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)


class ReservationSchema(Schema):
    order_id = fields.Raw()
    status = fields.String(metadata={"enum": ["RESERVED", "COMMITTED", "RELEASED"]})
    items = fields.List(fields.Nested(ReservationLineSchema))
