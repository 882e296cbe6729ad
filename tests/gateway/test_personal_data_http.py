"""Personal data through the whole shop (SQLite and MariaDB): encrypted at rest while login, the admin's search of
orders by customer and invoices keep working, and ``DELETE /users/me`` / ``DELETE /users/{id}`` erase it for good.

Runs accounts, products, inventory, orders, payments (the real gRPC provider), notifications and the gateway on the
real broker; invoices in the local folder, mail in the Maildir.
"""

from pathlib import Path

from nameko import config

from tests.gateway.helpers import assert_error
from tests.gateway.test_invoices_http import ADDRESS, customer, place, shop  # noqa: F401  (the fixture)
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
from tests.services.notifications.helpers import pdf_text
from tests.support import assert_not_stored, stored_text, wait_until

PHONE = "+447700900123"
PERSONAL = ("ann@example.com", "Ann Lee", PHONE, ADDRESS["line1"], ADDRESS["postal_code"])


def admin_token(http):
    return http.post("/auth/token", json={"email": "admin@example.com",
                                          "password": "admin-password-1"}).json()["access_token"]


def paid_order_with_invoice(shop, http, token, customer_id):  # noqa: F811
    product = shop.products.create_product({"sku": "TEA-1", "name": "Green tea", "price": "4.50",
                                            "initial_stock": 10})
    wait_until(lambda: shop.products.get_product(product["id"])["available"] == 10, message="stock")
    order = place(shop, customer_id, product, "tok_visa")
    assert order["status"] == "PAID", order
    wait_until(lambda: http.get(f"/orders/{order['id']}/invoice", token=token).status_code == 200,
               message="the invoice")
    wait_until(lambda: [n for n in shop.notifications.list_notifications(order["id"]) if n["status"] == "SENT"],
               message="the confirmation sent")
    return order


def invoice_text(http, token, order_id):
    link = http.get(f"/orders/{order_id}/invoice", token=token).json()
    return pdf_text(http.get(link["url"].removeprefix(config["PUBLIC_BASE_URL"])).content)


def databases():
    return list(config["DB_URIS"].values())


def test_personal_data_is_encrypted_at_rest_and_the_shop_still_works(shop, http):  # noqa: F811
    http.post("/auth/register", json={"email": "Ann@Example.com", "password": "correct-horse", "name": "Ann Lee",
                                      "phone": PHONE})
    login = http.post("/auth/token", json={"email": "ANN@example.com", "password": "correct-horse"})
    assert login.status_code == 200, login.text
    ann = http.get("/auth/me", token=login.json()["access_token"]).json()
    admin = admin_token(http)

    order = paid_order_with_invoice(shop, http, admin, ann["id"])

    found = http.get("/orders", params={"customer_id": ann["id"]}, token=admin).json()
    assert [o["id"] for o in found["items"]] == [order["id"]] and found["items"][0]["shipping_address"] == ADDRESS
    assert "Ann Lee" in invoice_text(http, admin, order["id"])
    assert "Green tea" in stored_text(config["DB_URIS"]["products:Base"])  # the scan does read the rows
    assert_not_stored(databases(), *PERSONAL, "tok_visa")
    assert "tok_visa" not in stored_text(config["DB_URIS"]["orders:Base"])  # never at rest once the provider answered


def test_an_erased_account_leaves_no_personal_data_and_its_orders_keep_their_lines(shop, http):  # noqa: F811
    ann, ann_token = customer(http, "ann@example.com", "Ann Lee")
    bob, bob_token = customer(http, "bob@example.com", "Bob Stone")
    admin = admin_token(http)
    order = paid_order_with_invoice(shop, http, admin, ann["id"])

    erased = http.delete("/users/me", token=ann_token)

    assert erased.status_code == 204, erased.text
    assert_error(http.get("/auth/me", token=ann_token), 401)
    assert_error(http.post("/auth/token", json={"email": "ann@example.com", "password": "correct-horse"}), 401)
    kept = http.get(f"/orders/{order['id']}", token=admin).json()
    assert kept["items"] == order["items"] and kept["total"] == order["total"] == "9.00"
    assert kept["customer_id"] == ann["id"]
    wait_until(lambda: http.get(f"/orders/{order['id']}", token=admin).json()["shipping_address"] == {},
               message="orders to forget the address")
    wait_until(lambda: all(n["recipient"] == "" for n in shop.notifications.list_notifications(order["id"])),
               message="notifications to forget the recipient")
    text = wait_until(lambda: (t := invoice_text(http, admin, order["id"])) and "Ann Lee" not in t and t,
                      message="the invoice re-issued without the name")
    assert "Green tea" in text and "9.00 USD" in text
    assert_not_stored(databases(), *PERSONAL)
    invoices = Path(config["INVOICE_DIR"])
    assert not any("Ann Lee" in pdf_text(path.read_bytes()) for path in invoices.rglob("*.pdf"))

    assert_error(http.delete(f"/users/{bob['id']}", token=ann_token), 401)
    assert_error(http.delete(f"/users/{bob['id']}", token=bob_token), 403, "forbidden")
    assert http.delete(f"/users/{bob['id']}", token=admin).status_code == 204
    assert_error(http.get("/auth/me", token=bob_token), 401)
    assert_error(http.delete(f"/users/{bob['id']}", token=admin), 404, "user_not_found")
