"""After payment: cancelling (refund, stock back), shipping steps (the payment captured), and listing orders."""

import pytest

from common.errors import Conflict, NotFound, ValidationFailed
from schemas.events import validate
from tests.services.orders.conftest import outbox_events, provider_status
from tests.support import wait_until


def test_cancelling_a_paid_order_refunds_it_and_puts_the_stock_back(saga):
    widget = saga.product(stock=10)
    order = saga.order([{"product_id": widget["id"], "quantity": 4}])
    saga.wait_for_status(order["id"], "PAID")
    wait_until(lambda: saga.stock(widget["id"])["on_hand"] == 6, message="stock committed")

    cancelled = saga.rpc.orders.cancel_order(order["id"], "changed my mind")

    assert cancelled["status"] == "CANCELLED"
    assert cancelled["history"][-1]["reason"] == "changed my mind"
    assert [h["status"] for h in cancelled["history"]] == ["PENDING_PAYMENT", "PAID", "CANCELLED"]
    wait_until(lambda: saga.rpc.orders.get_order(order["id"])["payment"]["status"] == "refunded",
               message="the refund")
    assert provider_status(saga, order["id"]) == "REFUNDED"
    stock = saga.stock(widget["id"])
    assert (stock["on_hand"], stock["reserved"]) == (10, 0)
    assert saga.rpc.orders.cancel_order(order["id"])["status"] == "CANCELLED"  # a repeat changes nothing
    assert saga.stock(widget["id"])["on_hand"] == 10


def test_cancelling_an_unpaid_order_releases_stock_and_fences_off_the_payment(saga):
    widget = saga.product(stock=3)
    order = saga.order([{"product_id": widget["id"], "quantity": 3}], token="tok_timeout")

    cancelled = saga.rpc.orders.cancel_order(order["id"])

    assert cancelled["status"] == "CANCELLED" and cancelled["payment"]["status"] == "voided"
    assert saga.stock(widget["id"])["reserved"] == 0
    assert provider_status(saga, order["id"]) == "VOIDED"


def test_orders_ship_and_deliver_in_order_only(saga, db_uris):
    widget = saga.product(stock=5)
    order = saga.order([{"product_id": widget["id"], "quantity": 1}])
    with pytest.raises(Conflict) as unpaid:
        saga.rpc.orders.change_status(order["id"], "SHIPPED")
    assert unpaid.value.code == "illegal_transition"
    saga.wait_for_status(order["id"], "PAID")

    with pytest.raises(Conflict):
        saga.rpc.orders.change_status(order["id"], "DELIVERED")
    shipped = saga.rpc.orders.change_status(order["id"], "SHIPPED")
    with pytest.raises(Conflict) as no_cancel:
        saga.rpc.orders.cancel_order(order["id"])
    delivered = saga.rpc.orders.change_status(order["id"], "DELIVERED")

    assert shipped["status"] == "SHIPPED" and delivered["status"] == "DELIVERED"
    assert no_cancel.value.code == "illegal_transition"
    assert [h["status"] for h in delivered["history"]] == ["PENDING_PAYMENT", "PAID", "SHIPPED", "DELIVERED"]
    assert delivered["invoice_url"].endswith(f"/orders/{order['id']}/invoice")
    wait_until(lambda: saga.rpc.orders.get_order(order["id"])["payment"]["status"] == "captured",
               message="the payment captured once shipped")
    assert provider_status(saga, order["id"]) == "CAPTURED"
    with pytest.raises(ValidationFailed):
        saga.rpc.orders.change_status(order["id"], "LOST")
    with pytest.raises(NotFound) as missing:
        saga.rpc.orders.change_status(999999, "SHIPPED")
    assert missing.value.code == "order_not_found"

    events = [e for e in outbox_events(db_uris) if e["aggregate_id"] == str(order["id"])]
    assert [e["event_type"] for e in events] == ["order.created", "order.paid", "order.status_changed",
                                                 "order.status_changed"]
    assert [e["data"]["status"] for e in events] == ["PENDING_PAYMENT", "PAID", "SHIPPED", "DELIVERED"]
    for envelope in events:
        validate(envelope)  # the Kafka contract (schemas/events)


def test_orders_list_by_customer_and_status_newest_first(saga):
    widget = saga.product(stock=20)
    mine = [saga.order([{"product_id": widget["id"], "quantity": 1}], customer_id=5, token="tok_chargeDeclined")
            for _ in range(3)]
    theirs = saga.order([{"product_id": widget["id"], "quantity": 1}], customer_id=6, token="tok_visa")
    for order in mine:
        saga.wait_for_status(order["id"], "PAYMENT_FAILED")
    saga.wait_for_status(theirs["id"], "PAID")

    page = saga.rpc.orders.list_orders(customer_id=5, page=1, page_size=2)
    assert (page["total"], page["page"], page["page_size"]) == (3, 1, 2)
    assert [o["id"] for o in page["items"]] == [mine[2]["id"], mine[1]["id"]]
    assert [o["id"] for o in saga.rpc.orders.list_orders(customer_id=5, page=2, page_size=2)["items"]] == [
        mine[0]["id"]]
    assert [o["id"] for o in saga.rpc.orders.list_orders(status="PAID")["items"]] == [theirs["id"]]
    assert saga.rpc.orders.list_orders()["total"] == 4
    with pytest.raises(ValidationFailed):
        saga.rpc.orders.list_orders(status="LOST")
    with pytest.raises(ValidationFailed):
        saga.rpc.orders.list_orders(page_size=101)
