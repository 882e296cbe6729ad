"""Readiness checks report each dependency's state, its latency and, when down, why."""

import sqlite3
import time

import eventlet
import pytest

from common import health
from scripts.tansu import free_port

REDIS = "redis://127.0.0.1:6379/15"


def closed_port():
    return free_port()  # nothing listens on a port just handed back by the OS


def test_run_checks_reports_up_down_and_a_check_that_hangs():
    def hangs():
        eventlet.sleep(30)

    def fails():
        raise ConnectionError("refused")

    ready, results = health.run_checks({"fine": lambda: "detail", "hangs": hangs, "fails": fails}, timeout=0.3)

    assert ready is False
    assert results["fine"]["status"] == "UP" and results["fine"]["detail"] == "detail"
    assert results["hangs"] == {"status": "DOWN", "error": "TimeoutError: no answer within 0.3s",
                                "latency_ms": results["hangs"]["latency_ms"]}
    assert results["fails"]["error"] == "ConnectionError: refused"
    assert all(result["latency_ms"] >= 0 for result in results.values())


def test_every_check_runs_at_once():
    # /health/ready pings every service: in turn, it took 200-300 ms per service on a fresh `make run`.
    started, ended = [], []

    def slow_ping():
        started.append(time.monotonic())
        eventlet.sleep(0.2)
        ended.append(time.monotonic())

    ready, _ = health.run_checks({f"service{n}": slow_ping for n in range(8)}, timeout=5)

    assert ready is True and len(ended) == 8
    assert max(started) < min(ended), "a check started only after another had finished"


def test_all_up_is_ready():
    assert health.run_checks({"a": lambda: None, "b": lambda: None})[0] is True


def test_broker(rabbit_uri):
    assert health.run_checks({"b": lambda: health.check_broker(rabbit_uri)})[0]
    ready, results = health.run_checks(
        {"b": lambda: health.check_broker(f"pyamqp://guest:guest@127.0.0.1:{closed_port()}/")})
    assert not ready and "ECONNREFUSED" in results["b"]["error"]


def test_database(db_uris, tmp_path):
    uri = db_uris["products:Base"]
    if uri.startswith("sqlite"):
        sqlite3.connect(uri.removeprefix("sqlite:///")).close()
    assert health.run_checks({"db": lambda: health.check_database(uri)})[0]

    missing = tmp_path / "missing.db"
    ready, results = health.run_checks({"db": lambda: health.check_database(f"sqlite:///{missing}")})
    assert not ready and "no database file" in results["db"]["error"]
    assert not missing.exists()  # a probe never creates an empty database
    ready, _ = health.run_checks(
        {"db": lambda: health.check_database(f"mysql+pymysql://root@127.0.0.1:{closed_port()}/x")})
    assert not ready


def test_cache(redis_uri):
    assert health.check_cache("") == "in-process"
    assert health.run_checks({"c": lambda: health.check_cache(redis_uri)})[0]
    assert not health.run_checks({"c": lambda: health.check_cache(f"redis://127.0.0.1:{closed_port()}/0")})[0]


def test_grpc_needs_an_http2_server():
    ready, results = health.run_checks({"g": lambda: health.check_grpc(f"127.0.0.1:{closed_port()}")})
    assert not ready and "ECONNREFUSED" in results["g"]["error"]
    # Redis answers, but not HTTP/2: a port that merely accepts is not a ready gRPC channel
    ready, results = health.run_checks({"g": lambda: health.check_grpc("127.0.0.1:6379")}, timeout=2)
    assert not ready, results
    assert not health.run_checks({"g": lambda: health.check_grpc(None)})[0]


def test_kafka_unreachable_or_unset():
    ready, results = health.run_checks({"k": lambda: health.check_kafka(f"127.0.0.1:{closed_port()}", 1)},
                                       timeout=1)
    assert not ready and results["k"]["status"] == "DOWN"
    assert "not set" in health.run_checks({"k": lambda: health.check_kafka("")})[1]["k"]["error"]


@pytest.mark.parametrize(("setting", "expected"), [
    (None, list(health.SERVICES)),
    ("products, orders", ["products", "orders"]),
    (["inventory"], ["inventory"]),
])
def test_services_to_check(setting, expected):
    assert health.services_to_check(setting) == expected


def test_git_sha_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("GIT_SHA", "feedbeef")
    health.git_sha.cache_clear()
    try:
        assert health.info("uat") == {"name": "product-order-service", "version": health.version(),
                                      "environment": "uat", "git_sha": "feedbeef"}
    finally:
        health.git_sha.cache_clear()
