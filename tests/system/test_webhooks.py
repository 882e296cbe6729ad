"""Webhooks in the whole system as `make run` starts it: an order placed over HTTP reaches a subscribed receiver
signed and in order, with the stock.low it caused; a webhooks process killed and restarted loses nothing."""

import uuid

import pytest

from tests.services.webhooks.conftest import Receiver, verified
from tests.system.conftest import ADDRESS, wait


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def place_order(system, customer, product_id, quantity):
    reply = customer.post(f"{system.base_url}/orders", json={
        "items": [{"product_id": product_id, "quantity": quantity}], "shipping_address": ADDRESS,
        "payment_token": "tok_visa"}, headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=30)
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_an_http_order_reaches_the_receiver_signed_and_in_order_with_its_stock_low(system, admin, receiver):
    made = admin.post(f"{system.base_url}/webhooks", timeout=15, json={
        "url": receiver.url, "events": ["order.created", "order.paid", "stock.low"]})
    assert made.status_code == 201, made.text
    hook = made.json()
    product = system.product(admin, 6)  # the dev threshold is 5

    order = place_order(system, system.customer(), product["id"], 2)

    def of_order():
        return [e for e in receiver.events() if e["event_type"].startswith("order.")
                and e["aggregate_id"] == str(order["id"])]
    wait(lambda: len(of_order()) == 2, 60, "order.created and order.paid at the receiver")
    assert [event["event_type"] for event in of_order()] == ["order.created", "order.paid"]
    low = wait(lambda: [e for e in receiver.events() if e["event_type"] == "stock.low"], 30, "stock.low")
    assert low[0]["data"]["product_id"] == product["id"] and low[0]["data"]["available"] == 4
    assert all(verified(request, hook["secret"]) for request in receiver.requests)
    deliveries = admin.get(f"{system.base_url}/webhooks/{hook['id']}/deliveries", timeout=15).json()
    assert {d["status"] for d in deliveries["items"]} == {"DELIVERED"} and deliveries["total"] == 3


def test_a_killed_webhooks_process_restarted_delivers_what_happened_meanwhile(system, admin, receiver):
    hook = admin.post(f"{system.base_url}/webhooks", json={"url": receiver.url, "events": ["order.paid"]},
                      timeout=15).json()
    product = system.product(admin, 100)
    customer = system.customer()
    system.kill("webhooks")

    orders = [place_order(system, customer, product["id"], 1) for _ in range(3)]
    wait(lambda: all(admin.get(f"{system.base_url}/orders/{o['id']}", timeout=15).json()["status"] == "PAID"
                     for o in orders), 60, "the orders paid")
    assert receiver.requests == []
    system.launch("webhooks")

    wait(lambda: {e["data"]["id"] for e in receiver.events()} >= {o["id"] for o in orders}, 60,
         "the order.paid events of the orders placed while webhooks was down")
    assert all(verified(request, hook["secret"]) for request in receiver.requests)
