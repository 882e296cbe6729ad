"""The Kafka event JSON Schemas (schemas/events): generated from the marshmallow schemas, and what they accept."""

import json
from types import SimpleNamespace

import jsonschema
import pytest

from common.events import make_envelope
from schemas.events import HERE, event_types, load_schema, validate
from schemas.events.generate import EVENTS, documents
from schemas.notifications import NotificationSentSchema

WHEN = "2026-11-24T13:00:00Z"
ORDER = {
    "id": 9, "customer_id": 2, "status": "PENDING_PAYMENT",
    "items": [{"product_id": 7, "sku": "BK-1", "name": "A book", "unit_price": "19.99", "quantity": 1,
               "line_total": "19.99"}],
    "total": "19.99", "currency": "USD",
    "shipping_address": {"name": "Ann", "line1": "1 High St", "line2": None, "city": "Leeds", "postal_code": "LS1",
                         "country": "GB"},
    "payment": {"status": "pending"}, "invoice_url": None,
    "history": [{"status": "PENDING_PAYMENT", "at": WHEN}], "created_at": WHEN, "updated_at": WHEN,
}
PRODUCT = {"id": 7, "sku": "BK-1", "name": "A book", "description": None, "price": "19.99", "currency": "USD",
           "category_id": None, "available": 4, "created_at": WHEN, "updated_at": WHEN}
CATEGORY = {"id": 3, "name": "Books", "description": None, "parent_id": None, "created_at": WHEN, "updated_at": WHEN}
STOCK = {"product_id": 7, "on_hand": 4, "reserved": 1, "available": 3, "low_stock_threshold": 5, "version": 2}
PAYMENT = {"order_id": 9, "status": "authorized", "reference": "pay_1", "failure_reason": "", "amount": "19.99",
           "currency": "USD"}
NOTIFICATION = SimpleNamespace(id=5, kind="order_confirmation", channel="sms", recipient="+447700900123",
                               subject=None, order_id=9, event_id="e-1", attempts=1, sent_at=None)
# data as the services build it (services/*, bridge/payments.py), one per event type
DATA = {
    "category.created": CATEGORY, "category.updated": CATEGORY, "category.deleted": CATEGORY,
    "product.created": {**PRODUCT, "initial_stock": 4},
    "product.updated": PRODUCT,
    "product.deleted": {**PRODUCT, "deleted_at": WHEN},
    "stock.updated": STOCK, "stock.low": STOCK,
    "stock.reserved": {**STOCK, "order_id": 9, "quantity": 1},
    "stock.committed": {**STOCK, "order_id": 9, "quantity": 1},
    "stock.released": {**STOCK, "order_id": 9, "quantity": 1},
    "order.created": ORDER,
    "order.paid": {**ORDER, "status": "PAID", "payment": {"status": "authorized", "reference": "pay_1"}},
    "order.payment_failed": {**ORDER, "status": "PAYMENT_FAILED",
                             "payment": {"status": "failed", "failure_reason": "card_declined"}},
    "order.cancelled": {**ORDER, "status": "CANCELLED",
                        "history": [*ORDER["history"], {"status": "CANCELLED", "at": WHEN, "reason": "changed mind"}]},
    "order.status_changed": {**ORDER, "status": "SHIPPED", "invoice_url": "http://shop.test/orders/9/invoice"},
    "payment.authorized": PAYMENT,
    "payment.captured": {**PAYMENT, "status": "captured"},
    "payment.failed": {**PAYMENT, "status": "declined", "reference": "", "failure_reason": "card_declined",
                       "reason": "card_declined"},
    "payment.refunded": {**PAYMENT, "status": "refunded"},
    "notification.sent": NotificationSentSchema().dump(NOTIFICATION),
    "user.deleted": {"id": 6, "deleted_at": WHEN},
    "user.erased": {"id": 6, "erased_at": WHEN},
}


def event(event_type, data=None, **envelope):
    data = DATA[event_type] if data is None else data
    aggregate = next(data[key] for key in ("id", "order_id", "product_id") if key in data)
    return {**make_envelope(event_type, aggregate, data, EVENTS[event_type].source, correlation_id="req-1"),
            **envelope}


def test_the_committed_files_are_the_generated_ones():
    wanted = documents()
    on_disk = {path.name: path.read_text() for path in HERE.glob("*.json")}
    stale = sorted(name for name in wanted.keys() | on_disk.keys() if wanted.get(name) != on_disk.get(name))
    assert not stale, f"stale event schemas {stale}: run `python -m schemas.events.generate` and commit the files"


def test_one_schema_per_catalogued_event_type_and_the_shared_file_is_none():
    assert event_types() == sorted(EVENTS) == sorted(DATA)
    assert len(event_types()) == 23 and "_defs" not in event_types()
    with pytest.raises(KeyError):
        load_schema("_defs")
    with pytest.raises(KeyError):
        validate({**event("order.paid"), "event_type": "widget.made"})


@pytest.mark.parametrize("event_type", sorted(DATA))
def test_an_event_as_its_service_emits_it_is_valid(event_type):
    schema = load_schema(event_type)
    assert schema["properties"]["source"]["const"] == EVENTS[event_type].source
    validate(event(event_type))
    validate(event(event_type, {**DATA[event_type], "added_later": True}))  # data may gain fields


def test_every_schema_is_valid_draft_2020_12_and_every_reference_resolves_locally():
    from schemas.events import _registry

    resolver = _registry().resolver()

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for path in HERE.glob("*.json"):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        base = resolver.in_subresource(_registry()[schema["$id"]])
        for ref in refs(schema):
            base.lookup(ref)  # raises if unresolvable


def test_order_data_never_carries_the_payment_token():
    order = load_schema("order.created")["properties"]["data"]
    defs = json.loads((HERE / "_defs.json").read_text())["$defs"]
    assert order == {"$ref": "urn:product-order-service:events:_defs#/$defs/Order"}
    assert "payment_token" not in defs["Order"]["properties"]


def test_status_enums_come_from_the_python_enums():
    from schemas.orders import OrderStatus, PaymentStatus
    from schemas.payments import ChargeStatus

    defs = json.loads((HERE / "_defs.json").read_text())["$defs"]
    assert defs["Order"]["properties"]["status"]["enum"] == [s.value for s in OrderStatus]
    assert defs["StatusChange"]["properties"]["status"]["enum"] == [s.value for s in OrderStatus]
    assert defs["PaymentState"]["properties"]["status"]["enum"] == [s.value for s in PaymentStatus]
    assert defs["Payment"]["properties"]["status"]["enum"] == [s.value for s in ChargeStatus]


def without(mapping, key):
    return {name: value for name, value in mapping.items() if name != key}


@pytest.mark.parametrize("envelope", [
    pytest.param(without(event("order.paid"), "correlation_id"), id="missing envelope field"),
    pytest.param(without(event("order.paid"), "data"), id="missing data"),
    pytest.param({**event("order.paid"), "payment_token": "tok_visa"}, id="extra envelope field"),
    pytest.param(event("order.paid", source="payments"), id="wrong source"),
    pytest.param(event("order.paid", event_version=0), id="event_version 0"),
    pytest.param(event("order.paid", occurred_at="yesterday"), id="occurred_at not RFC 3339"),
    pytest.param(event("order.paid", event_id=""), id="empty event_id"),
    pytest.param(event("order.paid", {**ORDER, "status": "LOST"}), id="unknown order status"),
    pytest.param(event("order.paid", without(ORDER, "status")), id="order without status"),
    pytest.param(event("order.created", {**ORDER, "payment_token": "tok_visa"}), id="order with a payment token"),
    pytest.param(event("order.paid", {**ORDER, "id": 0}), id="order id 0"),
    pytest.param(event("order.paid", {**ORDER, "total": 19.99}), id="money as a number"),
    pytest.param(event("order.paid", {**ORDER, "currency": "usd"}), id="currency not ISO 4217"),
    pytest.param(event("order.paid", {**ORDER, "payment": {"status": "PAID"}}), id="unknown order payment status"),
    pytest.param(event("order.paid", {**ORDER, "items": [{"product_id": "7"}]}), id="order line id a string"),
    pytest.param(event("payment.captured", {**PAYMENT, "status": "pending"}), id="unknown charge status"),
    pytest.param(event("payment.captured", without(PAYMENT, "status")), id="payment without status"),
    pytest.param(event("payment.failed", {**PAYMENT, "status": "declined"}), id="payment.failed without reason"),
    pytest.param(event("product.created", PRODUCT), id="product.created without initial_stock"),
    pytest.param(event("product.deleted", PRODUCT), id="product.deleted without deleted_at"),
    pytest.param(event("product.updated", without(PRODUCT, "sku")), id="product without sku"),
    pytest.param(event("stock.updated", {**STOCK, "on_hand": -1}), id="negative stock"),
    pytest.param(event("stock.updated", without(STOCK, "version")), id="stock without version"),
    pytest.param(event("category.created", {**CATEGORY, "parent_id": 0}), id="category parent 0"),
    pytest.param(event("notification.sent", without(DATA["notification.sent"], "channel")),
                 id="notification without channel"),
    pytest.param(event("user.deleted", {"id": 6}), id="user.deleted without deleted_at"),
    pytest.param(event("user.erased", {"id": 6}), id="user.erased without erased_at"),
])
def test_an_invalid_event_is_rejected(envelope):
    with pytest.raises(jsonschema.ValidationError):
        validate(envelope)
