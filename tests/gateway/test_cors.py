"""CORS: configured origins only, correct preflight answers, exposed headers; no CORS headers for anyone else."""

import pytest
from nameko import config

from gateway.security import EdgePolicy
from gateway.service import GatewayService
from tests.conftest import BASE_CONFIG

APP = "https://shop.example.com"


@pytest.fixture
def gateway(rabbit_config, web_config, container_factory):
    with config.patch({**BASE_CONFIG, "CORS_ALLOWED_ORIGINS": f"{APP}, http://localhost:3000",
                       "CORS_MAX_AGE": 900}):
        container = container_factory(GatewayService)
        container.start()
        yield container


def preflight(http, path, origin=APP, method="POST", headers="authorization, content-type"):
    return http.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                       "Access-Control-Request-Headers": headers})


def test_a_preflight_from_an_allowed_origin_is_answered(gateway, http):
    response = preflight(http, "/products")

    assert response.status_code == 204 and response.content == b""
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed
    assert response.headers["Access-Control-Max-Age"] == "900"
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers  # tokens, never cookies
    assert "X-Request-ID" in response.headers


def test_preflight_methods_are_the_routes_own(gateway, http):
    methods = preflight(http, "/products/7", method="DELETE").headers["Access-Control-Allow-Methods"]
    assert set(methods.split(", ")) == {"GET", "PATCH", "DELETE"}
    assert preflight(http, "/products/7/stock", method="PUT",
                     origin="http://localhost:3000").headers["Access-Control-Allow-Methods"] == "GET, PUT"


def test_a_disallowed_origin_gets_no_cors_headers(gateway, http):
    for origin in ("https://evil.example.com", "https://shop.example.com.evil.com", "null"):
        response = preflight(http, "/products", origin=origin)
        assert response.status_code == 204
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], origin
        plain = http.get("/health", headers={"Origin": origin})
        assert not [h for h in plain.headers if h.lower().startswith("access-control-")], origin


def test_actual_requests_from_an_allowed_origin_expose_the_api_headers(gateway, http):
    response = http.get("/health", headers={"Origin": APP})

    assert response.headers["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                       "X-RateLimit-Reset", "Location"}
    error = http.get("/nowhere", headers={"Origin": APP})  # errors are readable by the app too
    assert error.status_code == 404 and error.headers["Access-Control-Allow-Origin"] == APP


def test_an_options_request_that_is_not_a_preflight_is_a_json_405(gateway, http):
    response = http.options("/products")

    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_a_wildcard_allows_any_origin_and_no_list_allows_none():
    anyone = EdgePolicy(["*"])
    nobody = EdgePolicy([])

    assert anyone.origin_allowed("https://a.example") and not anyone.origin_allowed(None)
    assert not nobody.origin_allowed("https://a.example") and not nobody.cors_enabled
    assert EdgePolicy(["https://a.example/"]).origin_allowed("https://a.example")
