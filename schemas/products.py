"""Catalogue shapes: categories and products, what the API accepts and what it answers."""

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range, Regexp

from schemas.common import Money, PaginationSchema, Text, Timestamp, Trimmed, money_text, paginated, rfc3339

PRODUCT_SORTS = ("name", "-name", "price", "-price", "created_at", "-created_at")
DEFAULT_PRODUCT_SORT = "name"
MAX_ID = 2**63 - 1
MAX_STOCK = 2**31 - 1
SKU = Regexp(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$",
             error="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")


class Currency(Text):
    """ISO 4217 code; lower case is accepted and upper-cased."""

    def __init__(self, **kwargs):
        super().__init__(validate=Regexp(r"^[A-Z]{3}$", error="Not a 3-letter ISO 4217 currency code."), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip().upper()


def reference(**kwargs):
    return fields.Integer(validate=Range(min=1, max=MAX_ID), **kwargs)


class CategorySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    parent_id = fields.Integer(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class CategoryUpdateSchema(Schema):
    name = Trimmed(validate=Length(min=1, max=100))
    description = Text(allow_none=True, validate=Length(max=2000))
    parent_id = reference(allow_none=True)


class CategoryCreateSchema(CategoryUpdateSchema):
    name = Trimmed(required=True, validate=Length(min=1, max=100))


class ProductSchema(Schema):
    id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    price = Money()
    currency = fields.String()
    category_id = fields.Integer(allow_none=True)
    available = fields.Integer()
    created_at = Timestamp()
    updated_at = Timestamp()


def product_document(product):
    """``ProductSchema().dump(product)`` by hand, from an ORM object or a Core row alike.

    A search page dumps twenty products, and marshmallow's per-field machinery was a fifth of a search's CPU
    (bench/analysis.md); tests keep the two equal.
    """
    return {
        "id": product.id, "sku": product.sku, "name": product.name, "description": product.description,
        "price": money_text(product.price), "currency": product.currency, "category_id": product.category_id,
        "available": product.available, "created_at": rfc3339(product.created_at),
        "updated_at": rfc3339(product.updated_at),
    }


class ProductUpdateSchema(Schema):
    sku = Trimmed(validate=SKU)
    name = Trimmed(validate=Length(min=1, max=200))
    description = Text(allow_none=True, validate=Length(max=10_000))
    price = Money(validate=Range(min=0))
    currency = Currency()
    category_id = reference(allow_none=True)


class ProductCreateSchema(ProductUpdateSchema):
    sku = Trimmed(required=True, validate=SKU)
    name = Trimmed(required=True, validate=Length(min=1, max=200))
    price = Money(required=True, validate=Range(min=0))
    currency = Currency(load_default="USD")
    initial_stock = fields.Integer(load_default=0, validate=Range(min=0, max=MAX_STOCK))


class ProductSearchSchema(PaginationSchema):
    q = Trimmed(validate=Length(max=200))
    category_id = reference()
    min_price = Money(validate=Range(min=0))
    max_price = Money(validate=Range(min=0))
    in_stock = fields.Boolean()
    sort = fields.String(load_default=DEFAULT_PRODUCT_SORT, validate=OneOf(PRODUCT_SORTS))

    @validates_schema
    def check_price_range(self, data, **kwargs):
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be below min_price.", "max_price")


class StockLevelSchema(Schema):
    """What the catalogue reads from inventory's ``stock.*`` events to keep ``available`` up to date."""

    class Meta:
        unknown = EXCLUDE

    product_id = reference(required=True)
    available = fields.Integer(required=True)
    version = fields.Integer(required=True, validate=Range(min=0, max=MAX_ID))


ProductPageSchema = paginated(ProductSchema, "ProductPageSchema")
