"""The ``api`` entrypoint: every answer is JSON with the API.md error body, and carries X-Request-ID."""

import uuid

import pytest
from eventlet.event import Event
from kombu.exceptions import OperationalError as BrokerError
from marshmallow import Schema, ValidationError, fields
from nameko import config
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, select
from sqlalchemy.orm import DeclarativeBase
from werkzeug.wrappers import Response

from common.correlation import CorrelationId
from common.db import Database
from common.errors import Conflict, DependencyUnavailable, NotFound, ValidationFailed
from common.metrics import Metrics
from common.rpc import ServiceRpc, rpc
from gateway.http import api, routes
from gateway.responses import created, flatten_messages, map_exception
from tests.gateway.helpers import assert_error
from tests.support import wait_until


class LineSchema(Schema):
    quantity = fields.Integer(required=True)


class ThingSchema(Schema):
    name = fields.String(required=True)
    price = fields.Decimal(places=2, as_string=True)
    lines = fields.List(fields.Nested(LineSchema))


class SearchSchema(Schema):
    page = fields.Integer(load_default=1)


release_slow = Event()
UNREACHABLE_DATABASE = "mysql+pymysql://pos:pos@127.0.0.1:1/ledger"  # nothing listens on port 1


class LedgerBase(DeclarativeBase):
    pass


class Entry(LedgerBase):
    __tablename__ = "entries"
    id = Column(Integer, primary_key=True)


class LedgerService:
    """A service whose database is down."""

    name = "ledger"
    db = Database(LedgerBase)

    @rpc
    def count_entries(self):
        with self.db.get_session() as session:
            return len(session.scalars(select(Entry)).all())


class SlowService:
    name = "slow"

    @rpc
    def wait(self):
        release_slow.wait()
        return "late"


class EdgeService:
    name = "edge"

    nowhere_rpc = ServiceRpc("nowhere")
    slow_rpc = ServiceRpc("slow", timeout=0.3)
    ledger_rpc = ServiceRpc("ledger")
    correlation = CorrelationId()
    metrics = Metrics()

    @api("GET", "/things/<int:thing_id>", responses={200: ThingSchema}, tags=["Things"])
    def get_thing(self, request, thing_id):
        """Read a thing."""
        return {"id": thing_id, "correlation_id": self.correlation.id}

    @api("GET", "/things", query=SearchSchema)
    def search_things(self, request, query):
        return {"query": query}

    @api("POST", "/things", body=ThingSchema, responses={201: ThingSchema})
    def create_thing(self, request, body):
        return created(body, "/things/7")

    @api("DELETE", "/things/<int:thing_id>")
    def delete_thing(self, request, thing_id):
        return None

    @api("GET", "/fail/<string:kind>")
    def fail(self, request, kind):
        if kind == "conflict":
            raise Conflict("Out of stock.", {"products": [1]}, code="insufficient_stock")
        if kind == "invalid":
            raise ValidationFailed("Invalid input.", {"items": {0: {"quantity": ["Too small."]}}})
        if kind == "unknown_service":
            return self.nowhere_rpc.anything()
        if kind == "timeout":
            return self.slow_rpc.wait()
        if kind == "db_down":
            return self.ledger_rpc.count_entries()
        if kind == "not_json":
            return {"id": object()}
        raise KeyError("secret internal detail")

    @api("GET", "/metrics-like")
    def text(self, request):
        return Response("plain text", content_type="text/plain")


@pytest.fixture
def edge(rabbit_config, web_config, container_factory):
    container = container_factory(EdgeService)
    container.start()
    return container


def test_a_route_answers_json_with_the_request_id_of_the_client(edge, http):
    response = http.get("/things/5", headers={"X-Request-ID": "client-id-1"})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"] == "client-id-1"
    assert response.json() == {"id": 5, "correlation_id": "client-id-1"}


def test_an_unacceptable_or_missing_request_id_is_replaced_by_a_fresh_one(edge, http):
    bad = http.get("/things/5", headers={"X-Request-ID": "no spaces <allowed>"})
    missing = http.get("/things/5")

    for response in (bad, missing):
        request_id = response.headers["X-Request-ID"]
        assert str(uuid.UUID(request_id)) == request_id
        assert response.json()["correlation_id"] == request_id
    assert bad.headers["X-Request-ID"] != missing.headers["X-Request-ID"]


def test_unknown_routes_and_non_integer_ids_are_json_404s(edge, http):
    for path in ("/nothing-here", "/things/abc", "/things/0", "/things/99999999999999999999",
                 "/things/5/"):
        response = http.get(path, headers={"X-Request-ID": "r404"})
        assert_error(response, 404, "not_found")
        assert response.headers["X-Request-ID"] == "r404"


def test_a_wrong_method_is_405_with_allow(edge, http):
    response = http.put("/things/5")

    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "DELETE"}
    assert "X-Request-ID" in response.headers


def test_the_body_is_parsed_and_validated_with_the_declared_schema(edge, http):
    response = http.post("/things", json={"name": "a", "price": 3.5, "lines": [{"quantity": 2}]})

    assert response.status_code == 201
    assert response.headers["Location"] == "/things/7"
    assert response.json() == {"name": "a", "price": "3.50", "lines": [{"quantity": 2}]}


def test_malformed_json_is_400(edge, http):
    response = http.post("/things", data=b'{"name": ', headers={"Content-Type": "application/json"})

    assert_error(response, 400, "malformed_json")


def test_a_body_that_is_not_an_object_is_422(edge, http):
    for body in ([1, 2], "text", 42):
        assert_error(http.post("/things", json=body), 422, "validation_error")


def test_invalid_fields_are_422_with_field_messages(edge, http):
    response = http.post("/things", json={"price": "lots", "lines": [{"quantity": "x"}]})

    error = assert_error(response, 422, "validation_error")
    assert set(error["details"]) == {"name", "price", "lines.0.quantity"}
    assert all(isinstance(messages, list) for messages in error["details"].values())


def test_a_body_that_is_not_json_is_415(edge, http):
    response = http.post("/things", data="name=a",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert_error(response, 415, "unsupported_media_type")


def test_a_body_over_the_limit_is_413(edge, http):
    response = http.post("/things", json={"name": "x" * (1024 * 1024)})

    assert_error(response, 413, "payload_too_large")


def test_query_parameters_are_validated(edge, http):
    assert http.get("/things", params={"page": "3", "other": "x"}).json() == {"query": {"page": 3}}
    error = assert_error(http.get("/things", params={"page": "three"}), 422, "validation_error")
    assert "page" in error["details"]


def test_domain_errors_keep_their_status_code_and_details(edge, http):
    conflict = assert_error(http.get("/fail/conflict"), 409, "insufficient_stock")
    invalid = assert_error(http.get("/fail/invalid"), 422, "validation_error")

    assert conflict["details"] == {"products": [1]}
    assert invalid["details"] == {"items.0.quantity": ["Too small."]}


@pytest.fixture
def slow(rabbit_config, container_factory):
    global release_slow
    release_slow = Event()
    container = container_factory(SlowService)
    container.start()
    yield container
    release_slow.send(True)


@pytest.fixture
def ledger(rabbit_config, container_factory):
    with config.patch({"DB_URIS": {"ledger:LedgerBase": UNREACHABLE_DATABASE}}):
        container = container_factory(LedgerService)
        container.start()
        yield container


def test_unavailable_dependencies_are_503(edge, slow, http):
    for kind in ("unknown_service", "timeout"):
        response = http.get(f"/fail/{kind}")
        assert_error(response, 503, "service_unavailable")
        assert response.headers["Retry-After"] == "1"


def test_a_service_whose_database_is_down_answers_dependency_unavailable(edge, ledger, http):
    response = http.get("/fail/db_down")

    error = assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "1"
    assert "127.0.0.1" not in error["message"] and "OperationalError" not in response.text


def http_calls(outcome):
    return REGISTRY.get_sample_value("pos_entrypoint_calls_total", {
        "service": "edge", "entrypoint": "fail", "kind": "http", "outcome": outcome}) or 0.0


def test_an_http_call_counts_by_the_status_it_answered(edge, http):
    expected = {"conflict": (409, "client_error"), "invalid": (422, "client_error"),
                "unknown_service": (503, "error"), "bug": (500, "error"), "not_json": (500, "error")}
    for kind, (status, outcome) in expected.items():
        before = http_calls(outcome)
        assert http.get(f"/fail/{kind}").status_code == status
        # the response leaves before the worker's result reaches the metrics provider
        wait_until(lambda o=outcome, b=before: http_calls(o) == b + 1, message=f"/fail/{kind} counted as {outcome}")


def test_anything_else_is_a_500_that_leaks_nothing(edge, http):
    response = http.get("/fail/bug")

    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "KeyError" not in response.text
    assert error["details"] == {}


def test_none_is_204_and_a_response_is_served_as_is(edge, http):
    deleted = http.delete("/things/3")
    text = http.get("/metrics-like")

    assert deleted.status_code == 204 and deleted.content == b""
    assert text.status_code == 200 and text.text == "plain text"
    assert text.headers["Content-Type"].startswith("text/plain")
    assert "X-Request-ID" in deleted.headers and "X-Request-ID" in text.headers


# --- without a server ----------------------------------------------------------------------------

def test_routes_lists_the_declared_metadata_for_openapi():
    specs = {(spec.method, spec.path): spec for spec in routes(EdgeService)}

    thing = specs[("GET", "/things/{thing_id}")]
    assert thing.path_params == [("thing_id", "integer")]
    assert thing.responses == {200: ThingSchema}
    assert thing.tags == ["Things"] and thing.summary == "Read a thing."
    assert specs[("POST", "/things")].body is ThingSchema
    assert specs[("GET", "/things")].query is SearchSchema
    assert specs[("GET", "/fail/{kind}")].path_params == [("kind", "string")]


def test_auth_levels_are_checked_when_declared():
    with pytest.raises(ValueError):
        api("GET", "/x", auth="superuser")


@pytest.mark.parametrize("exc, status, code", [
    (ValidationError({"a": ["bad"]}), 422, "validation_error"),
    (NotFound("No such product.", code="product_not_found"), 404, "product_not_found"),
    (DependencyUnavailable("Payment provider down."), 503, "service_unavailable"),
    (RpcTimeout("products.get_product"), 503, "service_unavailable"),
    (UnknownService("products"), 503, "service_unavailable"),
    (ConnectionRefusedError(111, "refused"), 503, "service_unavailable"),
    (BrokerError("[Errno 111] Connection refused"), 503, "service_unavailable"),
    (RemoteError("OperationalError", "can't connect"), 500, "internal_error"),  # services answer DependencyUnavailable
    (RemoteError("ZeroDivisionError", "division by zero"), 500, "internal_error"),
    (TypeError("bug"), 500, "internal_error"),
])
def test_map_exception(exc, status, code):
    mapped_status, error, _headers = map_exception(exc)

    assert (mapped_status, error["code"]) == (status, code)
    assert set(error) == {"code", "message", "details"}


def test_flatten_messages_turns_nested_marshmallow_errors_into_dotted_fields():
    nested = {"items": {0: {"quantity": ["Too small."]}}, "address": {"city": ["Required."]},
              "_schema": ["Bad."]}

    assert flatten_messages(nested) == {"items.0.quantity": ["Too small."],
                                        "address.city": ["Required."], "_schema": ["Bad."]}
