"""Shapes only the HTTP edge needs: tokens, the stock body of PUT, health and the error body (for OpenAPI)."""

from marshmallow import Schema, fields
from marshmallow.validate import OneOf, Range

MAX_STOCK = 2**31 - 1


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=OneOf(["Bearer"]))
    expires_in = fields.Integer(required=True)


class StockLevelInputSchema(Schema):
    """``PUT /products/{id}/stock``: the product comes from the URL (inventory's schema wants it in the body)."""

    on_hand = fields.Integer(required=True, strict=True, validate=Range(min=0, max=MAX_STOCK))
    low_stock_threshold = fields.Integer(strict=True, allow_none=True,
                                         validate=Range(min=0, max=MAX_STOCK))


class HealthSchema(Schema):
    status = fields.String(required=True)


class ErrorDetailSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)
