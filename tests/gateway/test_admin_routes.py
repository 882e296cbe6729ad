"""The admin panel's routes over real HTTP: the page and its files, ``GET /admin/summary`` and ``GET /users``.

Runs the whole shop (payments with the real gRPC provider) like test_orders_http.py; the browser test is
test_admin_panel.py.
"""

from tests.gateway.helpers import assert_error
from tests.gateway.test_orders_http import order_body, shop, token_for  # noqa: F401  (shop: the fixture)
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
from tests.support import wait_until


def test_the_page_and_its_files_have_their_own_policy_and_nothing_else_is_served(shop, http):  # noqa: F811
    page = http.get("/admin")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="/admin/static/app.js">' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self';" in policy and "connect-src 'self'" in policy
    script = http.get("/admin/static/app.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert script.headers["Content-Security-Policy"] == policy
    for missing in ("/admin/static/nope.js", "/admin/static/__init__.py", "/admin/static/..%2F__init__.py"):
        assert_error(http.get(missing), 404)


def test_users_are_listed_for_admins_newest_first_and_found_by_part_of_the_email(shop, http):  # noqa: F811
    ann = token_for(http, "ann@example.com", "Ann Lee")
    token_for(http, "bob@shop.example.org", "Bob")
    token_for(http, "annie_b@example.com", "Annie")
    admin = token_for(http, "admin@example.com")
    assert_error(http.get("/users"), 401, "invalid_token")
    assert_error(http.get("/users", token=ann), 403, "forbidden")

    everyone = http.get("/users", token=admin).json()
    assert [user["email"] for user in everyone["items"]] == [
        "annie_b@example.com", "bob@shop.example.org", "ann@example.com", "admin@example.com"]
    assert everyone["total"] == 4 and set(everyone["items"][0]) == {"id", "email", "name", "phone", "role",
                                                                     "created_at"}
    found = http.get("/users", params={"email": "ANN", "page_size": 1, "page": 2}, token=admin).json()
    assert found == {"items": [everyone["items"][2]], "page": 2, "page_size": 1, "total": 2, "total_exact": True}
    assert http.get("/users", params={"email": "e_b"}, token=admin).json()["total"] == 1  # "_" is no wildcard
    assert http.get("/users", params={"email": "%"}, token=admin).json()["total"] == 0
    assert_error(http.get("/users", params={"page_size": 101}, token=admin), 422, "validation_error")


def test_the_summary_counts_orders_by_status_paid_revenue_low_stock_and_the_newest_orders(shop, http):  # noqa: F811
    ann, admin = token_for(http, "ann@example.com", "Ann Lee"), token_for(http, "admin@example.com")
    tea = shop.products.create_product({"sku": "TEA-1", "name": "Green tea", "price": "4.50", "initial_stock": 10})
    mug = shop.products.create_product({"sku": "MUG-1", "name": "Mug", "price": "7.25", "initial_stock": 3})
    wait_until(lambda: shop.products.get_product(tea["id"])["available"] == 10, message="stock")
    assert_error(http.get("/admin/summary", token=ann), 403, "forbidden")

    paid = http.post("/orders", json=order_body(tea, 2), token=ann).json()
    declined = http.post("/orders", json=order_body(mug, 1, token="tok_decline"), token=ann).json()
    shipped = http.post("/orders", json=order_body(mug, 1), token=ann).json()
    for order, status in ((paid, "PAID"), (declined, "PAYMENT_FAILED"), (shipped, "PAID")):
        wait_until(lambda o=order, s=status: http.get(f"/orders/{o['id']}", token=ann).json()["status"] == s,
                   message=f"order {order['id']} {status}")
    assert http.patch(f"/orders/{shipped['id']}/status", json={"status": "SHIPPED"}, token=admin).status_code == 200

    summary = http.get("/admin/summary", token=admin)
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["by_status"] == {"PENDING_PAYMENT": 0, "PAID": 1, "PAYMENT_FAILED": 1, "SHIPPED": 1,
                                 "DELIVERED": 0, "CANCELLED": 0}
    assert body["revenue"] == [{"currency": "USD", "amount": "16.25", "orders": 2}]  # 9.00 + 7.25; not the declined
    assert [order["id"] for order in body["recent_orders"]] == [shipped["id"], declined["id"], paid["id"]]
    assert [(level["sku"], level["available"]) for level in body["low_stock"]] == [("MUG-1", 2)]  # threshold 5
