"""Pricing an order from the catalogue's answer: integer cents, merged lines, one currency, unknown products named."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import NotFound, ValidationFailed
from services.orders.pricing import cents, merged_items, money, priced_lines


def product(product_id, price, currency="USD"):
    return {"id": product_id, "sku": f"SKU-{product_id}", "name": f"Thing {product_id}", "price": price,
            "currency": currency}


def test_lines_take_catalogue_prices_and_multiply_in_cents():
    lines, currency = priced_lines([{"product_id": 1, "quantity": 3}, {"product_id": 2, "quantity": 1}],
                                   [product(2, "0.10"), product(1, "19.99")])
    assert currency == "USD"
    assert lines == [
        {"product_id": 1, "sku": "SKU-1", "name": "Thing 1", "unit_price_cents": 1999, "quantity": 3,
         "line_total_cents": 5997},
        {"product_id": 2, "sku": "SKU-2", "name": "Thing 2", "unit_price_cents": 10, "quantity": 1,
         "line_total_cents": 10}]


def test_repeated_products_become_one_line_in_the_order_first_asked():
    assert merged_items([{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": 2},
                         {"product_id": 2, "quantity": 4}]) == [{"product_id": 2, "quantity": 5},
                                                                {"product_id": 1, "quantity": 2}]


def test_products_the_catalogue_did_not_return_are_named():
    with pytest.raises(NotFound) as missing:
        priced_lines([{"product_id": 1, "quantity": 1}, {"product_id": 3, "quantity": 1},
                      {"product_id": 4, "quantity": 1}], [product(1, "1.00")])
    assert missing.value.code == "product_not_found" and missing.value.details == {"product_ids": [3, 4]}


def test_one_order_has_one_currency():
    with pytest.raises(ValidationFailed) as mixed:
        priced_lines([{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 1}],
                     [product(1, "1.00", "USD"), product(2, "1.00", "EUR")])
    assert mixed.value.details == {"items": ["Mixed currencies: EUR, USD."]}


def test_an_order_may_not_cost_more_than_money_can_say():
    lines, _ = priced_lines([{"product_id": 1, "quantity": 1}], [product(1, "9999999999.99")])
    assert lines[0]["line_total_cents"] == 999999999999
    with pytest.raises(ValidationFailed) as too_much:  # found by the stateful fuzzer: 213 x 9999999999.99
        priced_lines([{"product_id": 1, "quantity": 213}], [product(1, "9999999999.99")])
    assert too_much.value.details == {"items": ["An order may total at most 9999999999.99."]}
    with pytest.raises(ValidationFailed):
        priced_lines([{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 1}],
                     [product(1, "9999999999.99"), product(2, "0.01")])


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_cents_and_money_round_trip(amount):
    assert money(cents(str(amount))) == f"{amount:.2f}"
