"""``GET /products`` with any combination of query strings answers 200 (a page) or 422 (the error body), never
a 500 — through the gateway to the products service, on SQLite and MariaDB."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nameko.standalone.rpc import ServiceRpcClient

from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.products.service import ProductsService
from tests.gateway.helpers import assert_error
from tests.schemas.test_properties_search import queries

EXAMPLES = int(os.environ.get("POS_FUZZ_EXAMPLES", "12")) * 4


@pytest.fixture
def catalogue(service_config, web_config, runner_factory):
    runner = runner_factory(AccountsService, ProductsService, GatewayService)
    runner.start()
    with ServiceRpcClient("products") as products:
        tea = products.create_category({"name": "Tea"})
        for sku, price in (("TEA-1", "4.50"), ("TEA-2", "0.99"), ("MUG-1", "12.00")):
            products.create_product({"sku": sku, "name": sku.title(), "price": price, "category_id": tea["id"]})


def test_any_search_query_is_a_page_or_a_422(catalogue, http):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(queries, st.booleans())
    def search(query, repeat_keys):
        params = [(name, value) for name, value in query.items() for _ in range(2 if repeat_keys else 1)]
        response = http.get("/products", params=params)
        if response.status_code == 422:
            pages_past_window = response.json()["error"]["code"] == "result_window_too_large"
            assert_error(response, 422, "result_window_too_large" if pages_past_window else "validation_error")
            return
        assert response.status_code == 200, (params, response.text)
        page = response.json()
        assert set(page) == {"items", "page", "page_size", "total", "total_exact"}
        assert len(page["items"]) <= page["page_size"] and page["total"] <= 10_000

    search()
