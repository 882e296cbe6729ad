"""Security headers on every response: nosniff, DENY framing, referrer policy, CSP (one that lets /docs work),
no-store on authenticated answers, HSTS in prod; the 1 MiB body limit still answers 413."""

import pytest
from nameko import config

from gateway.auth import issue_token
from gateway.service import GatewayService
from tests.conftest import BASE_CONFIG
from tests.gateway.helpers import assert_error

EVERY = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


@pytest.fixture
def settings():
    return {}


@pytest.fixture
def gateway(rabbit_config, web_config, container_factory, settings):
    with config.patch({**BASE_CONFIG, **settings}):
        container = container_factory(GatewayService)
        container.start()
        yield container


def answers(http):
    token = issue_token({"id": 1, "role": "customer"}, BASE_CONFIG["JWT_SECRET"], 600)["access_token"]
    return {
        "ok": http.get("/health"),
        "not found": http.get("/products/abc"),
        "method": http.delete("/health"),
        "unauthorised": http.get("/auth/me"),
        "bad token": http.get("/auth/me", token="x.y.z"),
        "malformed": http.post("/auth/token", data=b"{", headers={"Content-Type": "application/json"}),
        "too large": http.post("/auth/token", json={"email": "a" * (1024 * 1024)}),
        "preflight": http.options("/products", headers={"Origin": "https://x.example",
                                                        "Access-Control-Request-Method": "GET"}),
        "metrics": http.get("/metrics", token=token),
        "openapi": http.get("/openapi.json"),
    }


def test_every_response_carries_the_security_headers(gateway, http):
    for name, response in answers(http).items():
        for header, value in EVERY.items():
            assert response.headers.get(header) == value, (name, header)
        assert "X-Request-ID" in response.headers, name
        assert "Strict-Transport-Security" not in response.headers, name  # not outside prod
    api_csp = answers(http)["ok"].headers["Content-Security-Policy"]
    assert "default-src 'none'" in api_csp and "frame-ancestors 'none'" in api_csp


def test_the_docs_csp_allows_its_own_scripts_and_styles_only(gateway, http):
    csp = http.get("/docs").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))

    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "http" not in csp
    assert http.get("/docs/swagger-ui-bundle.js").headers["Content-Security-Policy"] == csp


def test_authenticated_answers_are_not_stored(gateway, http):
    token = issue_token({"id": 1, "role": "customer"}, BASE_CONFIG["JWT_SECRET"], 600)["access_token"]

    assert http.get("/health", token=token).headers["Cache-Control"] == "no-store"
    assert http.get("/auth/me", token="x.y.z").headers["Cache-Control"] == "no-store"
    assert "no-store" not in http.get("/health").headers.get("Cache-Control", "")
    assert http.get("/docs/swagger-ui.css").headers["Cache-Control"] == "public, max-age=86400"


def test_the_body_limit_is_413_with_the_error_body(gateway, http):
    assert_error(answers(http)["too large"], 413, "payload_too_large")


PROD = {"ENVIRONMENT": "prod", "JWT_SECRET": "a-prod-like-secret-0123456789-abcdefghijklmnop"}  # no published one


@pytest.mark.parametrize("settings", [PROD])
def test_prod_adds_hsts(gateway, http):
    hsts = http.get("/health").headers["Strict-Transport-Security"]

    assert hsts == "max-age=31536000; includeSubDomains"
    assert http.get("/nowhere").headers["Strict-Transport-Security"] == hsts
