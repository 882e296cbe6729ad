"""What an order costs: its lines priced from the catalogue at the moment it is placed, in integer cents."""

from decimal import Decimal

from common.errors import NotFound, ValidationFailed
from schemas.common import MONEY_LIMIT

# Money in answers has at most ten digits before the point (schemas.common.Money): so has what an order may cost.
MAX_CENTS = int(MONEY_LIMIT * 100) - 1


def cents(amount):
    return int((Decimal(amount) * 100).to_integral_value())


def money(amount_cents):
    return f"{Decimal(amount_cents) / 100:.2f}"


def merged_items(items):
    """One line per product, quantities of repeated products added up, in the order first asked."""
    merged = {}
    for item in items:
        merged[item["product_id"]] = merged.get(item["product_id"], 0) + item["quantity"]
    return [{"product_id": product_id, "quantity": quantity} for product_id, quantity in merged.items()]


def priced_lines(items, products):
    """``(lines, currency)`` of an order of ``items`` from ``products`` (the catalogue's answer); one currency.

    ``NotFound(product_not_found)`` names the products the catalogue did not return (unknown or deleted).
    """
    by_id = {product["id"]: product for product in products}
    missing = [item["product_id"] for item in items if item["product_id"] not in by_id]
    if missing:
        raise NotFound(f"Unknown products: {', '.join(map(str, missing))}.", {"product_ids": missing},
                       code="product_not_found")
    currencies = {by_id[item["product_id"]]["currency"] for item in items}
    if len(currencies) > 1:
        raise ValidationFailed("Products in one order must share a currency.",
                               {"items": [f"Mixed currencies: {', '.join(sorted(currencies))}."]})
    lines = [line(by_id[item["product_id"]], item["quantity"]) for item in items]
    if sum(line["line_total_cents"] for line in lines) > MAX_CENTS:
        raise ValidationFailed("The order's total is too large.",
                               {"items": [f"An order may total at most {money(MAX_CENTS)}."]})
    return lines, currencies.pop()


def line(product, quantity):
    unit = cents(product["price"])
    return {"product_id": product["id"], "sku": product["sku"], "name": product["name"],
            "unit_price_cents": unit, "quantity": quantity, "line_total_cents": unit * quantity}

