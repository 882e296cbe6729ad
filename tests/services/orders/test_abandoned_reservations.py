"""An order whose stock reservation is slow: whatever the reconciler and the request do, in whichever order, the
order either is refused with its stock whole, or is accepted and, once paid, takes its stock off the shelf.

Inventory here answers late on purpose (a process busy, or restarted after a SIGKILL with the request redelivered):
that is what let the reconciler release an order's stock while the order was being accepted, leaving a PAID order
whose stock never left the shelf."""

import sys
from contextlib import contextmanager

import eventlet
import pytest
from nameko import config
from nameko.standalone.rpc import ClusterRpcClient

from bridge.payments import PaymentsService
from common.errors import DependencyUnavailable
from common.rpc import rpc
from services.inventory.service import InventoryService
from services.orders.service import OrdersService
from services.products.service import ProductsService
from tests.services.orders.conftest import Saga, start
from tests.support import wait_until

START_STOCK, QUANTITY = 10, 2
REPLY_DELAY = 1.0  # seconds inventory holds each answer after its transaction committed


class LateAnsweringInventory(InventoryService):
    """The real inventory, whose answers to reserve and release arrive ``REPLY_DELAY`` after the work is done."""

    @rpc
    def reserve_stock(self, order_id, items):
        reservation = super().reserve_stock(order_id, items)
        eventlet.sleep(REPLY_DELAY)
        return reservation

    @rpc
    def release_stock(self, order_id):
        reservation = super().release_stock(order_id)
        eventlet.sleep(REPLY_DELAY)
        return reservation


@contextmanager
def slow_saga(container_factory, payment_provider, rpc_client, **timings):
    with config.patch(timings):  # for the whole test: the reconciler reads its timings on every run
        for cls in (ProductsService, LateAnsweringInventory, OrdersService, PaymentsService):
            start(container_factory, cls)
        yield Saga({}, payment_provider, rpc_client)


def place_and_settle(saga, product):
    """Place one order; -> the order once it is final, or None when it was refused (503)."""
    try:
        order = saga.order([{"product_id": product["id"], "quantity": QUANTITY}])
    except DependencyUnavailable:
        return None
    return saga.wait_for_status(order["id"], "PAID", "PAYMENT_FAILED", timeout=30)


def assert_stock_balances(saga, product, order):
    paid = QUANTITY if order is not None and order["status"] == "PAID" else 0
    expected = {"on_hand": START_STOCK - paid, "reserved": 0}
    wait_until(lambda: {k: saga.stock(product["id"])[k] for k in expected} == expected, timeout=20,
               message=f"stock {expected} (order {order and order['status']}), not {saga.stock(product['id'])}")


@pytest.fixture
def rpc_client(saga_config):
    with ClusterRpcClient() as client:
        yield client


def test_the_reconciler_abandoning_an_order_while_it_is_accepted_leaves_no_paid_order_without_its_stock(
        saga_config, payment_provider, container_factory, rpc_client):
    # The reservation's answer is late, so the reconciler finds the order still RESERVING and releases its stock;
    # the release's answer is late too, so the order is being accepted in between.
    with slow_saga(container_factory, payment_provider, rpc_client, ORDERS_RESERVATION_TIMEOUT_SECONDS=0.4,
                   ORDERS_RECONCILE_INTERVAL_SECONDS=0.1) as saga:
        product = saga.product(stock=START_STOCK)

        order = place_and_settle(saga, product)

        assert_stock_balances(saga, product, order)
        assert order is None, "the reconciler gave the order's stock back, so the order cannot be accepted"
        assert rpc_client.orders.list_orders()["total"] == 0


def test_a_reservation_whose_answer_came_too_late_is_released(
        saga_config, payment_provider, container_factory, rpc_client):
    # Inventory reserved, but its answer missed the caller's deadline: the order is refused, and what was
    # reserved for it goes back rather than staying held for an order that does not exist.
    with slow_saga(container_factory, payment_provider, rpc_client, RPC_TIMEOUT_SECONDS=REPLY_DELAY / 2,
                   ORDERS_RESERVATION_TIMEOUT_SECONDS=60) as saga:
        product = saga.product(stock=START_STOCK)

        order = place_and_settle(saga, product)

        assert order is None
        assert_stock_balances(saga, product, order)
        assert rpc_client.orders.list_orders()["total"] == 0


def test_a_retry_of_an_abandoned_order_with_its_key_places_the_order_at_once(
        saga_config, payment_provider, container_factory, rpc_client, monkeypatch):
    # The first attempt's reservation and release both answer too late: its order stays fenced until the
    # reconciler (60 s here) finishes the release. The customer's retry with the same key must not wait for it.
    with slow_saga(container_factory, payment_provider, rpc_client, RPC_TIMEOUT_SECONDS=REPLY_DELAY / 2,
                   ORDERS_RESERVATION_TIMEOUT_SECONDS=60, ORDERS_REPLAY_WAIT_SECONDS=3) as saga:
        product = saga.product(stock=START_STOCK)
        items = [{"product_id": product["id"], "quantity": QUANTITY}]
        with pytest.raises(DependencyUnavailable):
            saga.order(items, key="retry-me")
        monkeypatch.setattr(sys.modules[__name__], "REPLY_DELAY", 0)  # inventory answers in time from now on

        order = saga.order(items, key="retry-me")

        paid = saga.wait_for_status(order["id"], "PAID", timeout=30)
        assert saga.order(items, key="retry-me")["id"] == order["id"]  # and the key now names this one
        assert_stock_balances(saga, product, paid)
        assert rpc_client.orders.list_orders()["total"] == 1
