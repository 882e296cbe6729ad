"""``GET /health/process``, the gateway pod's readiness probe: its broker consumers and its Redis are required until
the process has been ready once, then only reported, so a shared outage never takes every replica out of its
Service (the API answers it with 503 and ``Retry-After``); ``/health/ready`` keeps saying what is down."""

import pytest
from nameko import config

from gateway.service import GatewayService
from scripts.tansu import free_port
from tests.conftest import BASE_CONFIG
from tests.netcut import link_to
from tests.support import wait_until


def states(body):
    return {name: (check["status"], check.get("optional", False)) for name, check in body["checks"].items()}


@pytest.fixture
def links(rabbit_config, rabbit_uri, redis_uri):
    """The gateway's broker and Redis, each behind a link the test can cut."""
    (amqp, amqp_uri), (redis, redis_uri) = link_to(rabbit_uri), link_to(redis_uri)
    through = {"AMQP_URI": amqp_uri, "REDIS_URI": redis_uri}
    with config.patch({**BASE_CONFIG, **through, "HEALTH_SERVICES": [], "HEALTH_CHECK_TIMEOUT": 1}):
        yield amqp, redis
    amqp.close()
    redis.close()


@pytest.fixture
def gateway(links, web_config, container_factory):
    container = container_factory(GatewayService)
    container.start()
    return container


def test_ready_with_its_consumers_and_redis_up(gateway, http):
    response = http.get("/health/process")

    assert response.status_code == 200, response.json()
    assert states(response.json()) == {"broker": ("UP", False), "cache": ("UP", False)}
    assert "consumer(s)" in response.json()["checks"]["broker"]["detail"]


def test_a_shared_outage_after_start_is_reported_but_keeps_it_ready(gateway, http, links):
    amqp, redis = links
    assert http.get("/health/process").status_code == 200  # ready once

    redis.cut()
    amqp.cut()
    wait_until(lambda: http.get("/health/process").json()["checks"]["broker"]["status"] == "DOWN", timeout=15,
               message="the broker reported down")
    response = http.get("/health/process")

    assert response.status_code == 200, response.json()
    assert states(response.json()) == {"broker": ("DOWN", True), "cache": ("DOWN", True)}
    assert http.get("/health/ready").status_code == 503  # the whole system's state says so
    amqp.mend()
    redis.mend()
    wait_until(lambda: states(http.get("/health/process").json())["broker"] == ("UP", True), timeout=60,
               interval=0.5, message="its consumers back")


def test_a_gateway_that_has_never_reached_redis_is_not_ready(links, web_config, container_factory, http):
    with config.patch({"REDIS_URI": f"redis://127.0.0.1:{free_port()}/0"}):
        container_factory(GatewayService).start()
        response = http.get("/health/process")

    assert response.status_code == 503
    assert response.json()["status"] == "DOWN"
    assert states(response.json()) == {"broker": ("UP", False), "cache": ("DOWN", False)}
