"""The Orders endpoints over real HTTP: placing with Idempotency-Key, ownership, cancelling, admin status steps.

Runs accounts, products, inventory, orders, payments (with the real gRPC provider) and the gateway on the real
broker, SQLite and MariaDB.
"""

import pytest
from nameko import config
from nameko.standalone.rpc import ClusterRpcClient

from bridge.payments import PaymentsService
from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.inventory.service import InventoryService
from services.orders.service import OrdersService
from services.products.service import ProductsService
from tests.gateway.helpers import assert_error
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
from tests.support import wait_until

ADDRESS = {"name": "Ann Lee", "line1": "2 High Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
FAST = {"PAYMENT_TIMEOUT_SECONDS": 2, "PAYMENT_PENDING_TIMEOUT_SECONDS": 5, "ORDERS_RECONCILE_INTERVAL_SECONDS": 0.3,
        "ORDERS_SETTLE_RETRY_SECONDS": 0.5, "RPC_TIMEOUT_SECONDS": 10, "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1, "max_workers": 20}


@pytest.fixture
def shop(service_config, web_config_port, payment_provider, runner_factory):  # noqa: F811
    settings = {**FAST, "PAYMENT_PROVIDER_ADDRESS": payment_provider.address,
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_config_port}"}
    with config.patch(settings):
        runner = runner_factory(AccountsService, ProductsService, InventoryService, OrdersService, PaymentsService,
                                GatewayService)
        runner.start()
        with ClusterRpcClient() as rpc:
            yield rpc


def token_for(http, email, name=None):
    if name:
        registered = http.post("/auth/register", json={"email": email, "password": "correct-horse", "name": name})
        assert registered.status_code == 201, registered.text
    password = "correct-horse" if name else "admin-password-1"
    return http.post("/auth/token", json={"email": email, "password": password}).json()["access_token"]


@pytest.fixture
def people(shop, http):
    return {"ann": token_for(http, "ann@example.com", "Ann Lee"), "bob": token_for(http, "bob@example.com", "Bob"),
            "admin": token_for(http, "admin@example.com")}


@pytest.fixture
def tea(shop):
    product = shop.products.create_product({"sku": "TEA-1", "name": "Green tea", "price": "4.50",
                                            "initial_stock": 10})
    wait_until(lambda: shop.products.get_product(product["id"])["available"] == 10, message="stock")
    return product


def order_body(product, quantity=2, token="tok_visa"):
    return {"items": [{"product_id": product["id"], "quantity": quantity}], "shipping_address": ADDRESS,
            "payment_token": token}


def test_placing_with_an_idempotency_key_answers_201_then_200_with_the_same_order(shop, http, people, tea):
    headers = {"Idempotency-Key": "basket-77"}
    first = http.post("/orders", json=order_body(tea), headers=headers, token=people["ann"])
    again = http.post("/orders", json=order_body(tea), headers=headers, token=people["ann"])

    assert first.status_code == 201, first.text
    order = first.json()
    assert first.headers["Location"] == f"/orders/{order['id']}"
    assert order["status"] == "PENDING_PAYMENT" and order["total"] == "9.00" and order["items"][0]["sku"] == "TEA-1"
    assert again.status_code == 200 and again.json()["id"] == order["id"]
    assert shop.inventory.get_stock(tea["id"])["available"] == 8
    other = http.post("/orders", json=order_body(tea), token=people["ann"])
    assert other.status_code == 201 and other.json()["id"] != order["id"]


def test_refusals_use_the_api_error_body(shop, http, people, tea):
    assert_error(http.post("/orders", json=order_body(tea)), 401)
    assert_error(http.post("/orders", json=order_body(tea, quantity=11), token=people["ann"]), 409,
                 "insufficient_stock")
    assert_error(http.post("/orders", json=order_body({"id": 424242}), token=people["ann"]), 404,
                 "product_not_found")
    invalid = assert_error(http.post("/orders", json={**order_body(tea), "items": []}, token=people["ann"]), 422,
                           "validation_error")
    assert "items" in invalid["details"]
    assert_error(http.post("/orders", json=order_body(tea), headers={"Idempotency-Key": "k" * 256},
                           token=people["ann"]), 422, "validation_error")
    assert_error(http.get("/orders/999999", token=people["ann"]), 404, "order_not_found")


def test_customers_see_and_cancel_only_their_own_orders_and_admins_see_all(shop, http, people, tea):
    ann_order = http.post("/orders", json=order_body(tea, 1), token=people["ann"]).json()
    bob_order = http.post("/orders", json=order_body(tea, 1, "tok_chargeDeclined"), token=people["bob"]).json()

    assert http.get(f"/orders/{ann_order['id']}", token=people["ann"]).status_code == 200
    assert_error(http.get(f"/orders/{ann_order['id']}", token=people["bob"]), 403, "forbidden")
    assert_error(http.post(f"/orders/{ann_order['id']}/cancel", token=people["bob"]), 403, "forbidden")
    assert [o["id"] for o in http.get("/orders", token=people["ann"]).json()["items"]] == [ann_order["id"]]
    assert http.get("/orders", params={"customer_id": bob_order["customer_id"]},
                    token=people["ann"]).json()["total"] == 1  # a customer's filter is always themself
    everyone = http.get("/orders", token=people["admin"]).json()
    assert {o["id"] for o in everyone["items"]} == {ann_order["id"], bob_order["id"]}
    only_bob = http.get("/orders", params={"customer_id": bob_order["customer_id"]}, token=people["admin"]).json()
    assert [o["id"] for o in only_bob["items"]] == [bob_order["id"]]
    wait_until(lambda: http.get("/orders", params={"status": "PAYMENT_FAILED"}, token=people["admin"])
               .json()["total"] == 1, message="bob's card to be declined")
    assert_error(http.get("/orders", params={"status": "LOST"}, token=people["admin"]), 422)


def test_a_paid_order_is_shipped_by_an_admin_and_cancelled_orders_are_refunded(shop, http, people, tea):
    to_ship = http.post("/orders", json=order_body(tea, 1), token=people["ann"]).json()
    to_cancel = http.post("/orders", json=order_body(tea, 3), token=people["ann"]).json()
    for order in (to_ship, to_cancel):
        wait_until(lambda o=order: http.get(f"/orders/{o['id']}", token=people["ann"]).json()["status"] == "PAID",
                   message="payment")

    status_path = f"/orders/{to_ship['id']}/status"
    assert_error(http.patch(status_path, json={"status": "SHIPPED"}, token=people["ann"]), 403)
    assert_error(http.patch(status_path, json={"status": "DELIVERED"}, token=people["admin"]), 409,
                 "illegal_transition")
    assert_error(http.patch(status_path, json={"status": "PAID"}, token=people["admin"]), 422)
    shipped = http.patch(status_path, json={"status": "SHIPPED"}, token=people["admin"])
    assert shipped.status_code == 200 and shipped.json()["status"] == "SHIPPED"
    assert_error(http.post(f"/orders/{to_ship['id']}/cancel", token=people["ann"]), 409, "illegal_transition")

    cancelled = http.post(f"/orders/{to_cancel['id']}/cancel", json={"reason": "too slow"}, token=people["ann"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED" and cancelled.json()["history"][-1]["reason"] == "too slow"
    wait_until(lambda: http.get(f"/orders/{to_cancel['id']}", token=people["ann"]).json()["payment"]["status"]
               == "refunded", message="the refund")
    stock = shop.inventory.get_stock(tea["id"])
    assert (stock["on_hand"], stock["reserved"]) == (9, 0)
