"""``GET /orders/{id}/invoice`` and the signed download behind it, on an order really placed and paid.

Runs products, inventory, orders, payments (with the real gRPC provider), accounts, notifications and the gateway
on the real broker, SQLite and MariaDB; invoices in the local folder and mail in the Maildir, as in development.
"""

import mailbox

import pytest
from nameko import config
from nameko.standalone.rpc import ClusterRpcClient

from bridge.payments import PaymentsService
from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.inventory.service import InventoryService
from services.notifications.service import NotificationsService
from services.orders.service import OrdersService
from services.products.service import ProductsService
from tests.gateway.helpers import assert_error
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
from tests.services.notifications.helpers import pdf_text
from tests.support import wait_until

ADDRESS = {"name": "Ann Lee", "line1": "2 High Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
FAST = {"PAYMENT_TIMEOUT_SECONDS": 2, "PAYMENT_PENDING_TIMEOUT_SECONDS": 5, "ORDERS_RECONCILE_INTERVAL_SECONDS": 0.3,
        "ORDERS_SETTLE_RETRY_SECONDS": 0.5, "RPC_TIMEOUT_SECONDS": 10, "NOTIFY_RETRY_INTERVAL": 0.2,
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1, "max_workers": 20}


@pytest.fixture
def shop(service_config, web_config_port, payment_provider, tmp_path, runner_factory):  # noqa: F811
    settings = {**FAST, "PAYMENT_PROVIDER_ADDRESS": payment_provider.address, "SMTP_HOST": "", "S3_BUCKET": "",
                "MAILDIR_PATH": str(tmp_path / "mail"), "INVOICE_DIR": str(tmp_path / "invoices"),
                "INVOICE_URL_SECRET": "invoice-link-secret-for-the-tests-0123456789",
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_config_port}", "SHOP_NAME": "Test Shop"}
    with config.patch(settings):
        runner = runner_factory(AccountsService, ProductsService, InventoryService, OrdersService, PaymentsService,
                                NotificationsService, GatewayService)
        runner.start()
        with ClusterRpcClient() as rpc:
            yield rpc


def customer(http, email, name):
    registered = http.post("/auth/register", json={"email": email, "password": "correct-horse", "name": name})
    assert registered.status_code == 201, registered.text
    token = http.post("/auth/token", json={"email": email, "password": "correct-horse"}).json()["access_token"]
    return registered.json(), token


def place(rpc, customer_id, product, payment_token):
    order = rpc.orders.create_order(customer_id, [{"product_id": product["id"], "quantity": 2}], ADDRESS,
                                    payment_token)["order"]
    return wait_until(lambda: (o := rpc.orders.get_order(order["id"]))["status"] not in ("PENDING_PAYMENT",)
                      and o, timeout=20, message="the payment to settle")


def test_the_owner_gets_a_link_that_downloads_the_invoice_pdf_and_nobody_else_does(shop, http):
    ann, ann_token = customer(http, "ann@example.com", "Ann Lee")
    _, bob_token = customer(http, "bob@example.com", "Bob Stone")
    admin_token = http.post("/auth/token", json={"email": "admin@example.com",
                                                 "password": "admin-password-1"}).json()["access_token"]
    product = shop.products.create_product({"sku": "TEA-1", "name": "Green tea", "price": "4.50",
                                            "initial_stock": 10})
    wait_until(lambda: shop.products.get_product(product["id"])["available"] == 10, message="stock")

    order = place(shop, ann["id"], product, "tok_visa")
    assert order["status"] == "PAID", order
    path = f"/orders/{order['id']}/invoice"
    answer = wait_until(lambda: (r := http.get(path, token=ann_token)).status_code != 404 and r,
                        message="the invoice to be issued")

    assert answer.status_code == 200, answer.text
    link = answer.json()
    assert link["url"].startswith(f"{config['PUBLIC_BASE_URL']}/invoices/") and link["expires_at"].endswith("Z")
    download = http.get(link["url"].removeprefix(config["PUBLIC_BASE_URL"]))
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/pdf"
    text = pdf_text(download.content)
    for expected in ("Test Shop", link["number"], f"Order: #{order['id']}", "TEA-1", "Green tea", "4.50 USD",
                     "Total", "9.00 USD"):
        assert expected in text, (expected, text)

    assert http.get(path, token=admin_token).status_code == 200
    assert_error(http.get(path, token=bob_token), 403, "forbidden")
    assert_error(http.get(path), 401)
    token = link["url"].rsplit("/", 1)[1]
    assert_error(http.get(f"/invoices/{token[:-4]}AAAA"), 403, "invalid_link")

    def confirmation():
        return [m for m in mailbox.Maildir(config["MAILDIR_PATH"]).values() if m["To"] == "ann@example.com"]

    [mail] = wait_until(confirmation, message="the confirmation in the dev mailbox")
    assert mail["Subject"] == f"Order #{order['id']} confirmed: thank you for your payment"


def test_an_unpaid_order_has_no_invoice(shop, http):
    ann, ann_token = customer(http, "ann@example.com", "Ann Lee")
    product = shop.products.create_product({"sku": "MUG-1", "name": "Blue mug", "price": "12.00",
                                            "initial_stock": 5})
    wait_until(lambda: shop.products.get_product(product["id"])["available"] == 5, message="stock")

    order = place(shop, ann["id"], product, "tok_chargeDeclined")

    assert order["status"] == "PAYMENT_FAILED", order
    assert_error(http.get(f"/orders/{order['id']}/invoice", token=ann_token), 404, "invoice_not_found")
    assert_error(http.get("/orders/999999/invoice", token=ann_token), 404)
