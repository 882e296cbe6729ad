"""What the admin panel's overview reads: ``GET /admin/summary`` (gateway/routes/admin.py)."""

from marshmallow import Schema, fields

from schemas.inventory import StockSchema
from schemas.orders import ORDER_STATUSES, OrderSchema


class RevenueSchema(Schema):
    currency = fields.String()
    # a sum of many orders: two places like Money, but not bound to one order's ten digits
    amount = fields.String(metadata={"pattern": r"^[0-9]+\.[0-9]{2}$", "example": "1234.50"})
    orders = fields.Integer()


class LowStockSchema(StockSchema):
    sku = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


class AdminSummarySchema(Schema):
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(),
                            metadata={"description": f"Orders per status ({', '.join(ORDER_STATUSES)})."})
    revenue = fields.List(fields.Nested(RevenueSchema),
                          metadata={"description": "Paid, shipped and delivered orders, per currency."})
    low_stock = fields.List(fields.Nested(LowStockSchema),
                            metadata={"description": "Products whose available stock is below their threshold."})
    recent_orders = fields.List(fields.Nested(OrderSchema))
