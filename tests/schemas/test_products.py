"""Catalogue schemas and the shared fields they are built from (schemas/common.py)."""

import datetime as dt
from decimal import Decimal

import pytest
from marshmallow import Schema, ValidationError

from schemas.common import Money, PaginationSchema, Timestamp, page_of, paginated
from schemas.products import (
    CategoryCreateSchema,
    CategoryUpdateSchema,
    ProductCreateSchema,
    ProductSchema,
    ProductSearchSchema,
    ProductUpdateSchema,
    StockLevelSchema,
)


class PriceSchema(Schema):
    price = Money()
    at = Timestamp()


@pytest.mark.parametrize("given, expected", [
    ("19.99", Decimal("19.99")), (19.99, Decimal("19.99")), (20, Decimal("20.00")), ("0", Decimal("0.00")),
    ("1.005", Decimal("1.01")), (1.004, Decimal("1.00")), (Decimal("3.5"), Decimal("3.50")), (" 7.1 ", Decimal("7.10")),
])
def test_money_loads_strings_and_numbers_quantised_to_cents(given, expected):
    loaded = PriceSchema().load({"price": given})["price"]
    assert loaded == expected and loaded.as_tuple().exponent == -2


@pytest.mark.parametrize("given", ["abc", "", "NaN", "Infinity", True, [], {}, "10000000000", 1e12])
def test_money_rejects_what_is_not_an_amount(given):
    with pytest.raises(ValidationError) as error:
        PriceSchema().load({"price": given})
    assert list(error.value.messages) == ["price"]


def test_money_dumps_a_two_place_string_and_timestamps_rfc3339_utc():
    naive = dt.datetime(2026, 11, 24, 13, 0, 0, 123456)
    aware = dt.datetime(2026, 11, 24, 14, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    one_pm = "2026-11-24T13:00:00Z"
    assert PriceSchema().dump({"price": Decimal("5"), "at": naive}) == {"price": "5.00", "at": one_pm}
    assert PriceSchema().dump({"price": Decimal("0.10"), "at": aware}) == {"price": "0.10", "at": one_pm}


def test_pagination_defaults_limits_and_page_shape():
    assert PaginationSchema().load({}) == {"page": 1, "page_size": 20}
    assert PaginationSchema().load({"page": "3", "page_size": "100", "other": "x"}) == {"page": 3, "page_size": 100}
    with pytest.raises(ValidationError) as error:
        PaginationSchema().load({"page": "0", "page_size": "101"})
    assert set(error.value.messages) == {"page", "page_size"}
    assert page_of([1], 2, 10, 11) == {"items": [1], "page": 2, "page_size": 10, "total": 11, "total_exact": True}
    page_schema = paginated(ProductSchema)
    assert set(page_schema().fields) == {"items", "page", "page_size", "total", "total_exact"}


def test_product_create_applies_defaults_and_normalises():
    loaded = ProductCreateSchema().load({"sku": " ab-1 ", "name": " Lamp ", "price": 12, "currency": "eur"})
    assert loaded == {"sku": "ab-1", "name": "Lamp", "price": Decimal("12.00"), "currency": "EUR",
                      "initial_stock": 0}


def test_product_create_reports_every_bad_field():
    with pytest.raises(ValidationError) as error:
        ProductCreateSchema().load({"sku": "bad sku!", "name": "", "price": "-1", "currency": "EURO",
                                    "category_id": 0, "initial_stock": -2, "colour": "red"})
    assert set(error.value.messages) == {"sku", "name", "price", "currency", "category_id", "initial_stock",
                                         "colour"}
    with pytest.raises(ValidationError) as error:
        ProductCreateSchema().load({})
    assert set(error.value.messages) == {"sku", "name", "price"}


def test_product_update_is_partial_without_defaults_and_takes_no_stock():
    assert ProductUpdateSchema().load({"price": "3"}) == {"price": Decimal("3.00")}
    assert ProductUpdateSchema().load({"category_id": None, "description": None}) == {
        "category_id": None, "description": None}
    with pytest.raises(ValidationError) as error:
        ProductUpdateSchema().load({"initial_stock": 5, "name": None, "price": None})
    assert set(error.value.messages) == {"initial_stock", "name", "price"}


def test_category_schemas():
    assert CategoryCreateSchema().load({"name": " Books "}) == {"name": "Books"}
    assert CategoryUpdateSchema().load({"parent_id": None}) == {"parent_id": None}
    with pytest.raises(ValidationError) as error:
        CategoryCreateSchema().load({"parent_id": "x"})
    assert set(error.value.messages) == {"name", "parent_id"}


def test_search_accepts_query_strings_and_typed_values():
    as_strings = ProductSearchSchema().load({
        "q": " lamp ", "category_id": "4", "min_price": "1.5", "max_price": "20", "in_stock": "true",
        "sort": "-price", "page": "2", "page_size": "5", "utm_source": "mail", "empty": ""})
    typed = ProductSearchSchema().load({
        "q": "lamp", "category_id": 4, "min_price": 1.5, "max_price": Decimal("20"), "in_stock": True,
        "sort": "-price", "page": 2, "page_size": 5})
    assert as_strings == typed == {
        "q": "lamp", "category_id": 4, "min_price": Decimal("1.50"), "max_price": Decimal("20.00"),
        "in_stock": True, "sort": "-price", "page": 2, "page_size": 5}
    assert ProductSearchSchema().load({"q": "", "category_id": ""}) == {"sort": "name", "page": 1, "page_size": 20}


def test_search_rejects_bad_sort_numbers_and_an_inverted_price_range():
    with pytest.raises(ValidationError) as error:
        ProductSearchSchema().load({"sort": "colour", "min_price": "cheap", "category_id": "x", "in_stock": "maybe",
                                    "page_size": "1000"})
    assert set(error.value.messages) == {"sort", "min_price", "category_id", "in_stock", "page_size"}
    with pytest.raises(ValidationError) as error:
        ProductSearchSchema().load({"min_price": "10", "max_price": "5"})
    assert set(error.value.messages) == {"max_price"}


def test_stock_level_reads_inventory_events():
    data = {"product_id": 3, "on_hand": 9, "reserved": 2, "available": 7, "version": 4, "order_id": 1}
    assert StockLevelSchema().load(data) == {"product_id": 3, "available": 7, "version": 4}
    with pytest.raises(ValidationError):
        StockLevelSchema().load({"product_id": 3})
