"""Warm product reads come from the products service's Redis entries, without an RPC hop; writes show at once.

The whole catalogue runs on the real broker, SQLite and MariaDB, with the shared Redis cache.
"""

import json

import pytest
import redis
from nameko import config
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.inventory.service import InventoryService
from services.products.service import ProductsService
from tests.gateway.helpers import assert_error
from tests.support import wait_until


@pytest.fixture
def system(service_config, web_config, redis_uri, runner_factory):
    with config.patch({"REDIS_URI": redis_uri, "RPC_TIMEOUT_SECONDS": 1}):
        runner = runner_factory(AccountsService, ProductsService, InventoryService, GatewayService)
        runner.start()
        yield runner


@pytest.fixture
def cached(redis_uri):
    client = redis.Redis.from_url(redis_uri)

    def entry(product_id):
        raw = client.get(f"products:product:{product_id}")
        return None if raw is None else json.loads(raw)

    yield entry
    client.close()


@pytest.fixture
def admin(system, http):
    response = http.post("/auth/token", json={"email": "admin@example.com", "password": "admin-password-1"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def create_product(http, admin, sku, stock):
    response = http.post("/products", json={"sku": sku, "name": sku.title(), "price": "2.50",
                                            "initial_stock": stock}, token=admin)
    assert response.status_code == 201, response.text
    return response.json()


def read(http, product_id):
    response = http.get(f"/products/{product_id}")
    assert response.status_code == 200, response.text
    return response.json()


def stocked(http, admin, product, on_hand):
    """Set the stock and wait for it to show: after that no older stock event can still empty the entry."""
    wait_until(lambda: http.get(f"/products/{product['id']}/stock", token=admin).status_code == 200,
               message="inventory to know the new product")
    stock = http.put(f"/products/{product['id']}/stock", json={"on_hand": on_hand}, token=admin)
    assert stock.status_code == 200, stock.text
    return wait_until(lambda: (doc := read(http, product["id"]))["available"] == on_hand and doc,
                      message="stock.updated in products")


def test_reads_after_writes_show_the_write(system, http, admin, cached):
    kettle = create_product(http, admin, "KETTLE", 3)
    assert read(http, kettle["id"]) == kettle
    kettle = stocked(http, admin, kettle, 9)  # a stock change shows its new `available`
    assert read(http, kettle["id"]) == kettle
    assert cached(kettle["id"]) == kettle  # the products service filled its entry; the next read is warm

    renamed = http.patch(f"/products/{kettle['id']}", json={"name": "Steel Kettle", "price": "3"}, token=admin)
    assert renamed.status_code == 200, renamed.text
    assert cached(kettle["id"]) is None
    after = read(http, kettle["id"])
    assert after["name"] == "Steel Kettle" and after["price"] == "3.00"
    assert read(http, kettle["id"]) == after == cached(kettle["id"])

    assert stocked(http, admin, kettle, 2)["available"] == 2
    assert read(http, kettle["id"]) == cached(kettle["id"])

    assert http.delete(f"/products/{kettle['id']}", token=admin).status_code == 204
    assert_error(http.get(f"/products/{kettle['id']}"), 404, "product_not_found")


def test_a_warm_read_needs_no_products_service(system, http, admin, cached):
    cup, saucer = create_product(http, admin, "CUP", 4), create_product(http, admin, "SAUCER", 5)
    cup = stocked(http, admin, cup, 6)
    assert read(http, cup["id"]) == cup
    assert cached(cup["id"]) == cup and cached(saucer["id"]) is None

    get_container(system, ProductsService).stop()

    assert read(http, cup["id"]) == cup
    # a cold read still goes to products, which is not there: the RPC deadline
    assert_error(http.get(f"/products/{saucer['id']}"), 503, "service_unavailable")
