"""Operations over HTTP: /health, /health/ready naming what is down, /info, and /metrics moving under traffic."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from nameko import config
from prometheus_client.parser import text_string_to_metric_families

from common import health
from common.health import Operational
from gateway.service import GatewayService
from scripts.tansu import free_port, launch, port_answers
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
PINGED = ["products", "inventory"]


class Products(Operational):
    name = "products"


class Inventory(Operational):
    name = "inventory"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    port = free_port()
    process = launch(port, log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


@pytest.fixture
def payment_provider(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "payment_provider.server", "--address", f"127.0.0.1:{port}",
         "--db", str(tmp_path / "payments.db")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    wait_until(lambda: port_answers("127.0.0.1", port) or process.poll() is not None, timeout=30,
               message="payment provider port")
    assert process.poll() is None, "the payment provider did not start"
    yield process, f"127.0.0.1:{port}"
    if process.poll() is None:
        process.terminate()
        process.wait(10)


@pytest.fixture
def gateway(service_config, web_config, redis_uri, kafka, payment_provider, container_factory):
    _, payment_address = payment_provider
    with config.patch({"HEALTH_SERVICES": PINGED, "REDIS_URI": redis_uri, "KAFKA_BOOTSTRAP_SERVERS": kafka,
                       "PAYMENT_PROVIDER_ADDRESS": payment_address, "HEALTH_CHECK_TIMEOUT": 2,
                       "DB_URIS": {k: v for k, v in service_config["DB_URIS"].items()
                                   if k.startswith(("products", "inventory"))}}):
        services = {cls.name: container_factory(cls) for cls in (Products, Inventory)}
        for container in services.values():
            container.start()
        gateway = container_factory(GatewayService)
        gateway.start()
        yield services


def test_liveness_is_up(gateway, http):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


def test_ready_lists_every_dependency_up_with_its_latency(gateway, http):
    response = http.get("/health/ready")

    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "UP"
    expected = {"broker", "cache", "database:products", "database:inventory", "service:products",
                "service:inventory", "kafka", "payment_provider"}
    assert set(body["checks"]) == expected
    for name, check in body["checks"].items():
        assert check["status"] == "UP", (name, check)
        assert check["latency_ms"] >= 0
    assert "broker(s)" in body["checks"]["kafka"]["detail"]


def test_ready_names_a_stopped_service_and_payment_provider(gateway, http, payment_provider):
    gateway["inventory"].stop()
    process, _ = payment_provider
    process.terminate()
    process.wait(10)

    response = http.get("/health/ready")

    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "DOWN"
    down = {name for name, check in body["checks"].items() if check["status"] == "DOWN"}
    assert down == {"service:inventory", "payment_provider"}
    # common.rpc's client with its deadline, not the check's own timeout
    assert body["checks"]["service:inventory"]["error"].startswith("DependencyUnavailable: inventory.ping did not")
    assert "refused" in body["checks"]["payment_provider"]["error"].lower()
    assert body["checks"]["service:products"]["status"] == "UP"


def test_ready_names_an_unreachable_cache_and_kafka(gateway, http):
    with config.patch({"REDIS_URI": f"redis://127.0.0.1:{free_port()}/0",
                       "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}):
        response = http.get("/health/ready")

    body = response.json()
    assert response.status_code == 503
    down = {name for name, check in body["checks"].items() if check["status"] == "DOWN"}
    assert down == {"cache", "kafka"}, body
    assert body["status"] == "DOWN"


def test_info_names_version_environment_and_git_sha(gateway, http, monkeypatch):
    monkeypatch.setenv("GIT_SHA", "0123abcd")
    health.git_sha.cache_clear()
    try:
        body = http.get("/info").json()
    finally:
        health.git_sha.cache_clear()
    assert body == {"name": "product-order-service", "version": health.version(),
                    "environment": "test", "git_sha": "0123abcd"}


def scrape(http, name, **labels):
    """The value of one sample of the gateway's /metrics (0 if absent), read with Prometheus' own parser."""
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0


def test_metrics_move_under_traffic(gateway, http):
    labels = dict(service="gateway", entrypoint="health", kind="http", outcome="success")
    before = scrape(http, "pos_entrypoint_calls_total", **labels)
    for _ in range(3):
        http.get("/health")
    after = scrape(http, "pos_entrypoint_calls_total", **labels)

    assert after == before + 3
    assert scrape(http, "pos_entrypoint_latency_seconds_count", service="gateway", entrypoint="health") >= 3


def test_a_failing_readiness_answer_counts_as_an_error(gateway, http):
    labels = dict(service="gateway", entrypoint="ready", kind="http", outcome="error")
    before = scrape(http, "pos_entrypoint_calls_total", **labels)
    gateway["products"].stop()

    assert http.get("/health/ready").status_code == 503
    assert scrape(http, "pos_entrypoint_calls_total", **labels) == before + 1
