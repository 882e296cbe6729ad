"""The OpenAPI document: valid OpenAPI 3, every API.md endpoint with its security, inputs, responses and headers;
served at ``/openapi.json`` with Swagger UI at ``/docs`` from local files only."""

import re
from html.parser import HTMLParser

import pytest
from marshmallow import Schema, fields
from nameko import config
from openapi_spec_validator import validate

from gateway.http import api, routes
from gateway.openapi import build_document
from gateway.responses import created
from gateway.service import GatewayService
from schemas.common import Money
from tests.conftest import BASE_CONFIG

# Every endpoint of ../shared/API.md (OpenAPI path templates), and who may call it.
API_MD = {
    ("POST", "/auth/register"): None, ("POST", "/auth/token"): None,
    ("DELETE", "/users/me"): "user", ("DELETE", "/users/{user_id}"): "admin",
    ("GET", "/categories"): None, ("GET", "/categories/{category_id}"): None,
    ("POST", "/categories"): "admin", ("PATCH", "/categories/{category_id}"): "admin",
    ("DELETE", "/categories/{category_id}"): "admin",
    ("GET", "/products"): None, ("GET", "/products/{product_id}"): None, ("POST", "/products"): "admin",
    ("PATCH", "/products/{product_id}"): "admin", ("DELETE", "/products/{product_id}"): "admin",
    ("GET", "/products/{product_id}/stock"): "admin", ("PUT", "/products/{product_id}/stock"): "admin",
    ("POST", "/orders"): "user", ("GET", "/orders"): "user", ("GET", "/orders/{order_id}"): "user",
    ("POST", "/orders/{order_id}/cancel"): "user", ("PATCH", "/orders/{order_id}/status"): "admin",
    ("GET", "/orders/{order_id}/invoice"): "user",
    ("POST", "/webhooks"): "admin", ("GET", "/webhooks"): "admin", ("GET", "/webhooks/{webhook_id}"): "admin",
    ("PATCH", "/webhooks/{webhook_id}"): "admin", ("DELETE", "/webhooks/{webhook_id}"): "admin",
    ("GET", "/webhooks/{webhook_id}/deliveries"): "admin",
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): "admin",
    ("GET", "/health"): None, ("GET", "/health/ready"): None, ("GET", "/info"): None,
    ("GET", "/metrics"): None, ("GET", "/openapi.json"): None, ("GET", "/docs"): None,
}


READINESS = {("GET", "/health/ready"), ("GET", "/health/process")}  # 503 is their readiness report


@pytest.fixture(scope="module")
def document():
    return build_document(GatewayService)


def operations(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_the_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_every_api_md_endpoint_is_there_with_its_security(document):
    found = {(method, path): op for method, path, op in operations(document)}

    missing = set(API_MD) - set(found)
    assert not missing
    for key, auth in API_MD.items():
        op = found[key]
        assert op["security"] == ([{"bearerAuth": []}] if auth else []), key
        assert op.get("x-required-role") == auth, key
        if auth:
            assert {"401", "403"} <= set(op["responses"]), key


def test_every_registered_route_is_documented(document):
    """Routes added later (any mixin) show up without touching the generator."""
    documented = {(method, path) for method, path, _ in operations(document)}
    registered = {(spec.method, spec.path) for spec in routes(GatewayService) if spec.openapi}

    assert documented == registered
    assert ("GET", "/docs/{asset}") not in documented  # static files are not API


def test_every_error_answer_is_the_error_body_with_the_request_id(document):
    for method, path, op in operations(document):
        for status, answer in op["responses"].items():
            assert answer["headers"]["X-Request-ID"]["required"] is True
            if status == "default" or (int(status) >= 400 and (method, path) not in READINESS):
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}, (method, path, status)
    error = document["components"]["schemas"]["Error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert error["required"] == ["error"] and set(detail["required"]) == {"code", "message", "details"}


def test_inputs_are_described(document):
    ops = {(method, path): op for method, path, op in operations(document)}

    create = ops[("POST", "/products")]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProductCreate"}
    assert {"400", "413", "415", "422", "409"} <= set(create["responses"])
    search = {p["name"]: p for p in ops[("GET", "/products")]["parameters"] if p["in"] == "query"}
    assert set(search) == {"q", "category_id", "min_price", "max_price", "in_stock", "sort", "page",
                           "page_size"}
    assert search["sort"]["schema"]["enum"] == ["name", "-name", "price", "-price", "created_at",
                                                "-created_at"]
    assert search["page_size"]["schema"]["maximum"] == 100
    product_id = next(p for p in ops[("GET", "/products/{product_id}")]["parameters"] if p["in"] == "path")
    assert product_id["required"] and product_id["schema"]["type"] == "integer"
    assert {"404", "503"} <= set(ops[("GET", "/products/{product_id}")]["responses"])
    place = {p["name"]: p for p in ops[("POST", "/orders")]["parameters"] if p["in"] == "header"}
    assert place["Idempotency-Key"]["schema"]["maxLength"] == 255 and not place["Idempotency-Key"]["required"]


def test_rate_limit_location_and_retry_headers(document):
    ops = {(method, path): op for method, path, op in operations(document)}

    created_answer = ops[("POST", "/products")]["responses"]["201"]["headers"]
    assert {"Location", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(created_answer)
    assert "Retry-After" in ops[("POST", "/auth/token")]["responses"]["429"]["headers"]
    assert "Retry-After" in ops[("GET", "/products")]["responses"]["503"]["headers"]
    assert "WWW-Authenticate" in ops[("GET", "/auth/me")]["responses"]["401"]["headers"]
    assert "429" not in ops[("GET", "/health")]["responses"]  # probes are never limited
    assert "X-RateLimit-Limit" not in ops[("GET", "/health")]["responses"]["200"]["headers"]


def test_money_is_a_two_place_string_out_and_a_string_or_number_in(document):
    price = document["components"]["schemas"]["Product"]["properties"]["price"]
    text, number = price["anyOf"]

    assert text["type"] == "string" and number["type"] == "number"
    assert re.fullmatch(text["pattern"], "19.99") and not re.fullmatch(text["pattern"], "19.9")
    assert not re.fullmatch(text["pattern"], "1e3")
    create = document["components"]["schemas"]["ProductCreate"]["properties"]["price"]
    assert create["anyOf"][1]["minimum"] == 0


class ThingSchema(Schema):
    name = fields.String(required=True)
    cost = Money(allow_none=True)


class LaterRoutes:
    """A mixin written after the generator: its metadata is all the document needs."""

    @api("POST", "/things", auth="user", body=ThingSchema, responses={201: ThingSchema, 409: None},
         headers=["Idempotency-Key"], summary="Make a thing", tags=["Things"])
    def make_thing(self, request, body):
        return created(body, "/things/1")

    @api("GET", "/things/<int:thing_id>/label", responses={200: "application/pdf"}, rate_limit=False)
    def label(self, request, thing_id):
        """A label to print."""


def test_a_new_route_is_documented_from_its_declaration():
    document = build_document(LaterRoutes)
    validate(document)

    make = document["paths"]["/things"]["post"]
    assert make["summary"] == "Make a thing" and make["tags"] == ["Things"]
    assert make["security"] == [{"bearerAuth": []}]
    assert any(p["name"] == "Idempotency-Key" for p in make["parameters"])
    assert make["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert document["components"]["schemas"]["Thing"]["properties"]["cost"]["anyOf"][0]["nullable"]
    label = document["paths"]["/things/{thing_id}/label"]["get"]
    assert label["summary"] == "A label to print." and label["security"] == []
    assert label["responses"]["200"]["content"] == {
        "application/pdf": {"schema": {"type": "string", "format": "binary"}}}
    assert "429" not in label["responses"]


# --- served by the gateway -----------------------------------------------------------------------

@pytest.fixture
def gateway(rabbit_config, web_config, container_factory):
    with config.patch(BASE_CONFIG):
        container = container_factory(GatewayService)
        container.start()
        yield container


class Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.inline_scripts, self.in_script = [], 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[name] for name in ("src", "href") if attrs.get(name)]
        self.in_script = tag == "script"
        if tag == "script" and not attrs.get("src"):
            self.inline_scripts += 1

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.inline_scripts += 1


def test_openapi_json_is_the_generated_document(gateway, http, document):
    response = http.get("/openapi.json")

    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.json() == document
    validate(response.json())


def test_docs_is_swagger_ui_from_local_files_only(gateway, http):
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    parser = Assets()
    parser.feed(page.text)

    assert parser.urls and parser.inline_scripts == 0
    assert all(url.startswith("/docs/") for url in parser.urls), parser.urls
    for url in parser.urls:
        asset = http.get(url)
        assert asset.status_code == 200 and asset.content, url
    assert "SwaggerUIBundle" in http.get("/docs/swagger-ui-bundle.js").text
    initializer = http.get("/docs/swagger-initializer.js")
    assert initializer.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))
    assert 'url: "/openapi.json"' in initializer.text and "validatorUrl: null" in initializer.text
    assert not re.search(r"https?://", initializer.text)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-eval" not in csp


def test_only_the_bundled_files_are_served(gateway, http):
    for path in ("/docs/index.html", "/docs/..%2Fsetup.cfg", "/docs/swagger-ui.js.map", "/docs/nothing.js"):
        response = http.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path


def test_every_operation_lists_its_real_statuses_without_a_catch_all(document):
    ops = {(method, path): op for method, path, op in operations(document)}

    assert not [key for key, op in ops.items() if "default" in op["responses"]]
    token = ops[("POST", "/auth/token")]["responses"]
    assert "401" in token and "409" not in token  # invalid_credentials; it never conflicts
    assert "403" in ops[("GET", "/invoices/{token}")]["responses"]  # invalid_link
    assert "404" in ops[("POST", "/orders")]["responses"]  # product_not_found
