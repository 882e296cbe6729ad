"""Rate limits: per client (user id of a valid token, else IP) and per route class, 429 with the error body and
``Retry-After``, ``X-RateLimit-*`` on every limited answer; shared by gateway replicas through Redis."""

import time

import pytest
from limits.storage import MemoryStorage
from nameko import config
from nameko.constants import WEB_SERVER_CONFIG_KEY
from nameko.testing.utils import find_free_port
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.auth import issue_token
from gateway.http import api, routes
from gateway.ratelimit import Quota, RateLimiter, client_address, route_class
from gateway.service import GatewayService
from tests.conftest import BASE_CONFIG
from tests.gateway.conftest import GatewayClient
from tests.gateway.helpers import assert_error

SECRET = BASE_CONFIG["JWT_SECRET"]


class LimitedService:
    name = "limited"

    @api("GET", "/things")
    def list_things(self, request):
        return {"things": []}

    @api("POST", "/things")
    def make_thing(self, request):
        return 201, {"id": 1}

    @api("GET", "/broken")
    def broken(self, request):
        raise KeyError("bug")


def user_token(user_id):
    return issue_token({"id": user_id, "role": "customer"}, SECRET, 600)["access_token"]


# --- without a server ----------------------------------------------------------------------------

def test_route_classes_of_the_gateway():
    classes = {(spec.method, spec.path): route_class(spec) for spec in routes(GatewayService)}

    assert classes[("POST", "/auth/token")] == classes[("POST", "/auth/register")] == "auth"
    assert classes[("POST", "/orders")] == classes[("POST", "/orders/{order_id}/cancel")] == "orders"
    assert classes[("POST", "/products")] == classes[("PUT", "/products/{product_id}/stock")] == "writes"
    assert classes[("GET", "/products")] == classes[("GET", "/orders")] == classes[("GET", "/auth/me")] == "reads"
    for probe in (("GET", "/health"), ("GET", "/health/ready"), ("GET", "/metrics"), ("GET", "/docs"),
                  ("GET", "/openapi.json")):
        assert classes[probe] is None, probe


def test_a_limiter_allows_the_limit_then_refuses_until_the_window_moves():
    limiter = RateLimiter({"reads": "3/minute"}, MemoryStorage())

    quotas = [limiter.hit("reads", "ip:1.2.3.4") for _ in range(4)]

    assert [q.allowed for q in quotas] == [True, True, True, False]
    assert [q.remaining for q in quotas] == [2, 1, 0, 0]
    assert all(q.limit == 3 and 0 < q.reset_in <= 60 for q in quotas)
    assert limiter.hit("reads", "ip:5.6.7.8").allowed  # another client
    assert limiter.hit("writes", "ip:1.2.3.4") is None  # a class without a limit
    assert quotas[-1].headers()["Retry-After"] == str(quotas[-1].reset_in)
    assert "Retry-After" not in quotas[0].headers()


def test_bad_limits_are_configuration_errors():
    from nameko.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        RateLimiter({"reads": "lots"}, MemoryStorage())
    with pytest.raises(ConfigurationError):
        RateLimiter({"reads": "1/second"}, MemoryStorage(), strategy="leaky")


def test_a_storage_outage_lets_requests_through():
    class Down(MemoryStorage):
        def acquire_entry(self, *args, **kwargs):
            raise ConnectionError("redis down")

    assert RateLimiter({"reads": "1/minute"}, Down()).hit("reads", "ip:1.2.3.4") is None


def test_the_client_ip_trusts_only_the_configured_proxies():
    request = Request(EnvironBuilder(headers={"X-Forwarded-For": "6.6.6.6, 10.0.0.1, 10.0.0.2"},
                                     environ_base={"REMOTE_ADDR": "10.0.0.3"}).get_environ())

    assert client_address(request) == "10.0.0.3"
    assert client_address(request, trusted_proxies=1) == "10.0.0.2"
    assert client_address(request, trusted_proxies=2) == "10.0.0.1"
    assert client_address(request, trusted_proxies=5) == "10.0.0.3"  # fewer hops than proxies: spoofed


def test_quota_headers():
    assert Quota(True, 10, 9, 60).headers() == {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9",
                                                "X-RateLimit-Reset": "60"}
    assert Quota(False, 10, 0, 0).headers()["Retry-After"] == "1"


# --- over HTTP ------------------------------------------------------------------------------------

LIMITS = {"RATE_LIMITS": {"reads": "3/minute", "writes": "2/minute", "auth": "2/minute"},
          "TRUSTED_PROXY_COUNT": 1}


def start(container_factory, service_cls, port, settings):
    with config.patch({**BASE_CONFIG, **settings, WEB_SERVER_CONFIG_KEY: f"127.0.0.1:{port}"}):
        container = container_factory(service_cls)
        container.start()
    return GatewayClient(f"http://127.0.0.1:{port}")


@pytest.fixture
def limited(rabbit_config, container_factory):
    return start(container_factory, LimitedService, find_free_port(), LIMITS)


def test_a_burst_above_the_limit_gets_429s_while_other_clients_are_unaffected(limited):
    ann, bob = user_token(1), user_token(2)

    burst = [limited.get("/things", token=ann) for _ in range(5)]

    assert [r.status_code for r in burst] == [200, 200, 200, 429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in burst] == ["2", "1", "0", "0", "0"]
    refused = burst[-1]
    error = assert_error(refused, 429, "rate_limited")
    assert error["details"]["limit"] == 3
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == "3" and "X-Request-ID" in refused.headers
    assert limited.get("/things", token=bob).status_code == 200  # another user
    assert limited.get("/things").status_code == 200  # anonymous: by IP
    assert limited.post("/things", token=ann).status_code == 201  # writes have their own budget


def test_anonymous_clients_are_told_apart_by_ip(limited):
    first = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(3):
        assert limited.get("/things", headers=first).status_code == 200
    assert_error(limited.get("/things", headers=first), 429, "rate_limited")
    assert limited.get("/things", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    forged = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # only the last hop is trusted
    assert limited.get("/things", headers=forged).status_code == 429


def test_an_invalid_token_counts_against_the_ip(limited):
    headers = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(3):
        limited.get("/things", headers=headers, token="not-a-token")
    assert limited.get("/things", headers=headers).status_code == 429


def test_errors_of_a_limited_route_carry_the_headers_too(limited):
    response = limited.get("/broken")

    assert_error(response, 500, "internal_error")
    assert response.headers["X-RateLimit-Limit"] == "3"


def test_the_gateway_limits_logins_by_ip(rabbit_config, container_factory):
    gateway = start(container_factory, GatewayService, find_free_port(), LIMITS)
    junk = {"data": b"{", "headers": {"Content-Type": "application/json"}}

    answers = [gateway.post("/auth/token", **junk) for _ in range(3)]

    assert [r.status_code for r in answers] == [400, 400, 429]
    assert_error(answers[-1], 429, "rate_limited")
    assert gateway.post("/auth/register", **junk).status_code == 429  # one auth budget
    assert gateway.get("/health").status_code == 200 and "X-RateLimit-Limit" not in gateway.get("/health").headers


def test_without_rate_limits_nothing_is_limited(rabbit_config, container_factory):
    unlimited = start(container_factory, LimitedService, find_free_port(), {"RATE_LIMITS": None})

    answers = [unlimited.get("/things") for _ in range(10)]
    assert {r.status_code for r in answers} == {200}
    assert "X-RateLimit-Limit" not in answers[0].headers


def test_gateway_replicas_share_the_budget_through_redis(rabbit_config, container_factory, redis_uri):
    settings = {**LIMITS, "RATE_LIMITS": {"reads": "4/minute"}, "REDIS_URI": redis_uri}
    one = start(container_factory, LimitedService, find_free_port(), settings)
    two = start(container_factory, LimitedService, find_free_port(), settings)
    ann = user_token(int(time.time()))  # a fresh user: Redis outlives a test

    statuses = [client.get("/things", token=ann).status_code for client in (one, two, one, two, one, two)]

    assert statuses == [200, 200, 200, 200, 429, 429]
    assert one.get("/things", token=user_token(7)).status_code == 200
