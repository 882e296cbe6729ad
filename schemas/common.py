"""Marshmallow fields and schemas every API shape shares: money, RFC 3339 timestamps, pagination.

Imports only marshmallow and the standard library (the gateway, the services and the OpenAPI document use them).
"""

import datetime as dt
import decimal

from marshmallow import EXCLUDE, Schema, fields, pre_load
from marshmallow.validate import Range

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000_000
CENTS = decimal.Decimal("0.01")
# Numeric(12, 2): ten digits before the point.
MONEY_LIMIT = decimal.Decimal("10000000000")


class Money(fields.Decimal):
    """A decimal string with two places ("19.99"); loads a string or a number, quantised to cents."""

    default_error_messages = {
        "invalid": "Not a valid amount of money.",
        "too_large": "Amount too large (at most 9999999999.99).",
    }

    def __init__(self, **kwargs):
        super().__init__(places=2, rounding=decimal.ROUND_HALF_UP, as_string=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            raise self.make_error("invalid")
        amount = super()._deserialize(value, attr, data, **kwargs)
        if abs(amount) >= MONEY_LIMIT:
            raise self.make_error("too_large")
        return amount.copy_abs() if amount.is_zero() else amount  # "-0.001" is "0.00", not "-0.00"


class Timestamp(fields.DateTime):
    """RFC 3339 in UTC with a ``Z`` (``2026-11-24T13:00:00Z``); naive datetimes are taken as UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        return rfc3339(value)


def money_text(amount):
    """What ``Money`` dumps: two places, half up."""
    return None if amount is None else format(decimal.Decimal(str(amount)).quantize(CENTS, decimal.ROUND_HALF_UP), "f")


def rfc3339(moment):
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


class Text(fields.String):
    """A string that is Unicode text: a lone surrogate (``"\\ud800"`` in JSON) cannot be stored, sent or encoded."""

    default_error_messages = {"not_text": "Not valid Unicode text."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("not_text") from None
        return text


class Email(Text, fields.Email):
    """An email address that is Unicode text."""


class Trimmed(Text):
    """A string with surrounding whitespace removed before validation."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class QuerySchema(Schema):
    """Query-string parameters: unknown ones are ignored and an empty value counts as absent."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def drop_blank_values(self, data, **kwargs):
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items()
                if not (value is None or (isinstance(value, str) and not value.strip()))}


class PaginationSchema(QuerySchema):
    page = fields.Integer(load_default=1, validate=Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(load_default=DEFAULT_PAGE_SIZE, validate=Range(min=1, max=MAX_PAGE_SIZE))


def page_of(items, page, page_size, total, total_exact=True):
    """The paginated list shape of API.md; ``total_exact`` is false only where a total is capped (product search,
    services/products/window.py)."""
    return {"items": items, "page": page, "page_size": page_size, "total": total, "total_exact": total_exact}


def paginated(item_schema, name=None):
    """A schema describing ``page_of`` for ``item_schema`` (for OpenAPI)."""
    schema_name = name or f"{item_schema.__name__.removesuffix('Schema')}PageSchema"
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item_schema), required=True),
        "page": fields.Integer(required=True),
        "page_size": fields.Integer(required=True),
        "total": fields.Integer(required=True),
        "total_exact": fields.Boolean(required=True, metadata={
            "description": "false when there are more matches than `total` says (a search caps it)"}),
    }, name=schema_name)
