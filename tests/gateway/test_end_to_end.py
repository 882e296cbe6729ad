"""The catalogue over HTTP with accounts, products, inventory and the gateway running on the real broker.

Runs on SQLite and MariaDB. Stock reaches products' ``available`` through events, so the tests wait for it.
"""

import pytest
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient

from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.inventory.service import InventoryService
from services.products.service import ProductsService
from tests.gateway.helpers import assert_error
from tests.support import wait_until

created_events = []


class ProductEvents:
    name = "product_events"

    @event_handler("products", "product.created")
    def remember(self, envelope):
        created_events.append(envelope)


@pytest.fixture
def system(service_config, web_config, runner_factory):
    created_events.clear()
    runner = runner_factory(AccountsService, ProductsService, InventoryService, GatewayService,
                            ProductEvents)
    runner.start()
    return runner


@pytest.fixture
def admin(system, http):
    response = http.post("/auth/token",
                         json={"email": "admin@example.com", "password": "admin-password-1"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def customer(system, http):
    registered = http.post("/auth/register", json={"email": "cat@example.com",
                                                   "password": "meow-meow-1", "name": "Cat"})
    assert registered.status_code == 201, registered.text
    answer = http.post("/auth/token", json={"email": "cat@example.com", "password": "meow-meow-1"})
    return answer.json()["access_token"]


def create(http, token, path, body):
    response = http.post(path, json=body, token=token)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"{path}/{created['id']}"
    return created


@pytest.fixture
def catalogue(http, admin):
    """Two categories and five products; stock as given at creation, then one PUT."""
    tea = create(http, admin, "/categories", {"name": "Tea", "description": "Leaves"})
    coffee = create(http, admin, "/categories", {"name": "Coffee"})
    rows = [("TEA-GREEN", "Green Tea", "4.50", tea, 10), ("TEA-BLACK", "Black Tea", 3, tea, 0),
            ("COF-ESP", "Espresso Beans", "12.99", coffee, 5),
            ("COF-DECAF", "Decaf Beans", 9.5, coffee, 0),
            ("MUG-1", "Mug", "7.25", None, 2)]
    products = {}
    for sku, name, price, category, stock in rows:
        products[sku] = create(http, admin, "/products", {
            "sku": sku, "name": name, "price": price, "initial_stock": stock,
            "description": "Good with tea" if sku == "MUG-1" else None,
            "category_id": category["id"] if category else None})
    black = products["TEA-BLACK"]["id"]
    wait_until(lambda: http.get(f"/products/{black}/stock", token=admin).status_code == 200,
               message="inventory to know the new product")
    stock = http.put(f"/products/{black}/stock", json={"on_hand": 7, "low_stock_threshold": 2},
                     token=admin)
    assert stock.status_code == 200, stock.text
    assert stock.json() == {"product_id": black, "on_hand": 7, "reserved": 0, "available": 7,
                            "low_stock_threshold": 2}
    wait_until(lambda: http.get(f"/products/{black}").json()["available"] == 7,
               message="stock.updated to reach products")
    return {"tea": tea, "coffee": coffee, **products}


def skus(response):
    assert response.status_code == 200, response.text
    return [item["sku"] for item in response.json()["items"]]


def test_admin_builds_the_catalogue_and_a_customer_searches_it(http, admin, customer, catalogue):
    green = http.get(f"/products/{catalogue['TEA-GREEN']['id']}",
                     headers={"X-Request-ID": "e2e-read-1"})
    assert green.headers["X-Request-ID"] == "e2e-read-1"
    product = green.json()
    assert set(product) == {"id", "sku", "name", "description", "price", "currency", "category_id",
                            "available", "created_at", "updated_at"}
    assert product["price"] == "4.50" and product["currency"] == "USD"
    assert product["available"] == 10 and product["created_at"].endswith("Z")
    assert catalogue["COF-DECAF"]["price"] == "9.50" and catalogue["TEA-BLACK"]["price"] == "3.00"

    categories = http.get("/categories").json()
    assert [c["name"] for c in categories["items"]] == ["Coffee", "Tea"]
    assert categories["total"] == 2 and categories["page"] == 1

    search = http.get("/products", params={"q": "TEA"}, token=customer)
    assert search.json()["total"] == 3 and search.json()["page_size"] == 20
    assert sorted(skus(search)) == ["MUG-1", "TEA-BLACK", "TEA-GREEN"]  # name, sku or description
    coffee = str(catalogue["coffee"]["id"])
    assert sorted(skus(http.get("/products", params={"category_id": coffee}))) == [
        "COF-DECAF", "COF-ESP"]
    assert skus(http.get("/products", params={"min_price": "4.5", "max_price": 10,
                                              "sort": "price"})) == [
        "TEA-GREEN", "MUG-1", "COF-DECAF"]
    assert skus(http.get("/products", params={"in_stock": "true", "sort": "-price"})) == [
        "COF-ESP", "MUG-1", "TEA-GREEN", "TEA-BLACK"]
    pages = [http.get("/products", params={"sort": "name", "page_size": 2, "page": page}).json()
             for page in (1, 2, 3)]
    assert [[i["name"] for i in page["items"]] for page in pages] == [
        ["Black Tea", "Decaf Beans"], ["Espresso Beans", "Green Tea"], ["Mug"]]
    assert {page["total"] for page in pages} == {5}
    assert {page["total_exact"] for page in pages} == {True} and search.json()["total_exact"] is True
    past = http.get("/products", params={"q": "tea", "page": 501, "page_size": 20})  # API.md: 501 * 20 > 10000
    assert past.status_code == 422 and past.headers["Content-Type"].startswith("application/json")
    assert past.json()["error"]["code"] == "result_window_too_large" and "page" in past.json()["error"]["details"]


def test_the_request_id_travels_with_the_rpc_calls_and_events_it_causes(http, admin):
    response = http.post("/products", json={"sku": "TRACE-1", "name": "Traced", "price": "1.00"},
                         token=admin, headers={"X-Request-ID": "trace-me-42"})

    assert response.status_code == 201 and response.headers["X-Request-ID"] == "trace-me-42"
    event = wait_until(lambda: next((e for e in created_events if e["data"]["sku"] == "TRACE-1"), None),
                       message="product.created")
    assert event["correlation_id"] == "trace-me-42"


def test_writes_are_visible_to_the_next_read(http, admin, catalogue):
    mug = catalogue["MUG-1"]["id"]
    assert http.get(f"/products/{mug}").json()["price"] == "7.25"  # now cached

    changed = http.patch(f"/products/{mug}", json={"price": "8", "name": "Big Mug"}, token=admin)
    assert changed.status_code == 200, changed.text
    assert http.get(f"/products/{mug}").json()["price"] == "8.00"
    assert http.patch(f"/categories/{catalogue['tea']['id']}", json={"description": "Loose"},
                      token=admin).json()["description"] == "Loose"

    deleted = http.delete(f"/products/{mug}", token=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(http.get(f"/products/{mug}"), 404)
    assert "MUG-1" not in skus(http.get("/products", params={"q": "mug"}))
    assert_error(http.get(f"/products/{mug}/stock", token=admin), 404)


def test_every_bad_request_gets_the_error_body_never_a_500(http, admin, customer, catalogue):
    tea, green = catalogue["tea"]["id"], catalogue["TEA-GREEN"]["id"]

    assert_error(http.post("/products", data=b"{oops", token=admin,
                           headers={"Content-Type": "application/json"}), 400, "malformed_json")
    assert_error(http.post("/products", json={"sku": "X"}), 401, "invalid_token")
    assert_error(http.post("/products", json={"sku": "X"}, token=customer), 403, "forbidden")
    assert_error(http.get(f"/products/{green}/stock", token=customer), 403, "forbidden")
    for path in ("/products/999999", "/products/abc", "/categories/424242", "/nowhere"):
        assert_error(http.get(path), 404)
    assert_error(http.put("/products/999999/stock", json={"on_hand": 1}, token=admin), 404)
    assert_error(http.delete("/categories", token=admin), 405, "method_not_allowed")
    duplicate = {"sku": "TEA-GREEN", "name": "Again", "price": "1.00"}
    assert_error(http.post("/products", json=duplicate, token=admin), 409, "duplicate_sku")
    assert_error(http.delete(f"/categories/{tea}", token=admin), 409, "category_in_use")

    with ServiceRpcClient("inventory") as inventory:
        inventory.reserve_stock("order-1", [{"product_id": green, "quantity": 4}])
    below = http.put(f"/products/{green}/stock", json={"on_hand": 3}, token=admin)
    assert_error(below, 409, "stock_below_reserved")

    for params in ({"sort": "popularity"}, {"min_price": "cheap"}, {"page": "0"},
                   {"page_size": "101"}, {"category_id": "x"}, {"in_stock": "maybe"}):
        error = assert_error(http.get("/products", params=params), 422, "validation_error")
        assert set(error["details"]) == set(params)
    invalid = http.post("/products", json={"sku": "", "price": "-1", "initial_stock": -2},
                        token=admin)
    assert {"sku", "name", "price", "initial_stock"} <= set(
        assert_error(invalid, 422, "validation_error")["details"])
    assert_error(http.put(f"/products/{green}/stock", json={"on_hand": "lots"}, token=admin), 422)
    assert_error(http.post("/categories", json={"name": "Herbal", "parent_id": 999999},
                           token=admin), 422)
