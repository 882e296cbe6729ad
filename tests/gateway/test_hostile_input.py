"""Hostile requests get the API.md error body with ``X-Request-ID`` and the security headers: never a 500, a hang,
or eventlet's bare status line. The real gateway and accounts service on the real broker; raw sockets where a
well-behaved client library would refuse to send the request."""

import json
import socket
import time

import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from werkzeug.datastructures import Headers

from common.errors import ValidationFailed
from gateway.bodies import MAX_BODY_BYTES, MAX_JSON_DEPTH
from gateway.service import GatewayService
from services.accounts.service import AccountsService
from tests.gateway.helpers import assert_error

SOCKET_TIMEOUT = 1.0
CREDENTIALS = {"email": "admin@example.com", "password": "admin-password-1"}


@pytest.fixture
def gateway(service_config, web_config, container_factory):
    with config.patch({"HTTP_SOCKET_TIMEOUT_SECONDS": SOCKET_TIMEOUT}):
        for service in (AccountsService, GatewayService):
            container_factory(service).start()
        yield


def assert_edge_headers(headers):
    assert headers["X-Request-ID"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in headers


def raw_exchange(port, request, timeout=10):
    """What the gateway answers ``request`` (bytes) on a fresh connection: ``(status, headers, body)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = Headers([line.split(": ", 1) for line in lines[1:]])
    return int(lines[0].split()[1]), headers, json.loads(body)


def request_bytes(path="/health", headers=()):
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("url", ["/auth/token", "/auth/register", "/products"])
def test_json_nested_thousands_deep_is_malformed_json(gateway, http, url):
    admin = http.post("/auth/token", json=CREDENTIALS).json()["access_token"]
    for depth in (MAX_JSON_DEPTH + 1, 10_000):
        response = http.post(url, data="[" * depth + "]" * depth, headers={"Content-Type": "application/json"},
                             token=admin)
        assert_error(response, 400, "malformed_json")
        assert_edge_headers(response.headers)


def test_json_nested_within_the_bound_is_only_a_validation_error(gateway, http):
    nested = {"email": "a@b.c", "password": "pw", "extra": json.loads("[" * 20 + "]" * 20)}
    assert_error(http.post("/auth/token", json=nested), 401, "invalid_credentials")


def test_a_lone_surrogate_in_a_password_is_a_validation_error(gateway, http):
    body = '{"email":"a@b.c","password":"\\ud800"}'
    response = http.post("/auth/token", data=body, headers={"Content-Type": "application/json"})
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == {"password": ["Not valid Unicode text."]}


def test_a_lone_surrogate_in_an_order_is_refused_before_it_reaches_the_saga(gateway, http):
    admin = http.post("/auth/token", json=CREDENTIALS).json()["access_token"]
    body = ('{"items": [{"product_id": 1, "quantity": 1}], "payment_token": "tok_\\udfff", "shipping_address": '
            '{"name": "\\ud800", "line1": "1 Main St", "city": "Springfield", "postal_code": "1", "country": "US"}}')
    response = http.post("/orders", data=body, headers={"Content-Type": "application/json"}, token=admin)
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == {"payment_token": ["Not valid Unicode text."],
                                "shipping_address.name": ["Not valid Unicode text."]}


def test_an_rpc_caller_gets_the_same_refusal(gateway):
    with ServiceRpcClient("accounts") as accounts, pytest.raises(ValidationFailed) as raised:
        accounts.authenticate("a@b.c", "\ud800")
    assert raised.value.details == {"password": ["Not valid Unicode text."]}


def chunks(data, size=100):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_chunked_body_is_read(gateway, http):
    response = http.post("/auth/token", data=chunks(json.dumps(CREDENTIALS).encode()),
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_a_chunked_body_over_the_bound_is_payload_too_large(gateway, web_config_port):
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // len(chunk) + 2))
    head = (b"POST /auth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    status, headers, body = raw_exchange(web_config_port, head + body + b"0\r\n\r\n")
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert_edge_headers(headers)


def test_the_token_answer_is_never_cached(gateway, http):
    response = http.post("/auth/token", json=CREDENTIALS)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"


@pytest.mark.parametrize("extra", [["X-Big: " + "a" * 9000], [f"X-Many-{n}: 1" for n in range(150)]])
def test_a_header_line_over_8_kib_or_too_many_headers_is_a_json_error(gateway, web_config_port, extra):
    status, headers, body = raw_exchange(web_config_port, request_bytes(headers=extra))
    assert (status, body["error"]["code"]) == (431, "headers_too_large")
    assert set(body["error"]) == {"code", "message", "details"}
    assert_edge_headers(headers)


def test_a_url_over_8_kib_is_a_json_error(gateway, web_config_port):
    status, headers, body = raw_exchange(web_config_port, request_bytes(path="/products?q=" + "a" * 9000))
    assert (status, body["error"]["code"]) == (414, "uri_too_long")
    assert_edge_headers(headers)


def test_a_request_line_that_is_not_http_is_a_json_error(gateway, web_config_port):
    status, headers, body = raw_exchange(web_config_port, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert_edge_headers(headers)


@pytest.mark.parametrize("partial", [
    b"GET /health HTTP/1.1\r\nHost: localhost\r\n",  # headers never finished
    b"POST /auth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{\"email\":",  # body never finished
])
def test_a_client_that_stops_sending_is_cut_off(gateway, web_config_port, partial):
    with socket.create_connection(("127.0.0.1", web_config_port), timeout=SOCKET_TIMEOUT * 10) as sock:
        sock.sendall(partial)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        waited = time.monotonic() - started
    assert waited < SOCKET_TIMEOUT * 5
    assert answer == b"" or b"request_timeout" in answer, answer
