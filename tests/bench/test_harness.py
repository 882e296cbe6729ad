"""The bench harness works on tiny numbers: it loads a real floor, seeds, produces to Kafka and writes a report.

Nothing here asserts speed: speed is what `make bench` reports.
"""

import os
import subprocess
import sys
import time
from datetime import datetime

import pytest
from nameko import config
from sqlalchemy import func, select

from bench import infra, profiling, report
from bench.floors import HOP, Experiment, run_floor
from bench.kafka import Throughput, percentiles, produce_floor
from bench.loadgen import Load, LoadResult, request_lines, run_wrk
from bench.scenarios import OrdersResult, SearchPoint
from bench.seed import Catalogue
from bench.settings import Settings
from common.db import make_engine
from common.migrations import upgrade
from scripts.tansu import free_port, launch


@pytest.fixture
def wrk():
    try:
        return infra.ensure_wrk()
    except SystemExit as exc:
        pytest.skip(str(exc))


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DURATION", "1")
    monkeypatch.setenv("BENCH_WARMUP", "0")
    monkeypatch.setenv("BENCH_CONNECTIONS", "4")
    monkeypatch.setenv("BENCH_THREADS", "1")
    monkeypatch.setenv("BENCH_FLOOR_PORT", str(free_port()))
    settings = Settings()
    settings.work_dir = tmp_path
    return settings


@pytest.mark.parametrize("experiment", [HOP[0], *(e for e in HOP if "BENCH_COMMON_RPC" in (e.env or {}))],
                         ids=["nameko-defaults", "common-rpc"])
def test_a_floor_is_loaded_through_wrk_and_answers_without_errors(rabbit_config, tiny, wrk, tmp_path, experiment):
    env = {**os.environ, "AMQP_URI": config["AMQP_URI"], "PYTHONWARNINGS": "ignore"}

    result = run_floor("hop", experiment, tiny, env, wrk, tmp_path / "log")

    assert result.requests > 0
    assert result.errors == 0, result.error_kinds
    assert 0 < result.p50 <= result.p99 <= result.max


def test_a_floor_that_cannot_start_is_reported(rabbit_config, tiny, wrk, tmp_path):
    env = {**os.environ, "AMQP_URI": config["AMQP_URI"], "PYTHONWARNINGS": "ignore"}
    broken = Experiment("broken", env={"MAX_WORKERS": "not-a-number"})

    with pytest.raises(RuntimeError, match="exited"):
        run_floor("bare", broken, tiny, env, wrk, tmp_path / "log")


def test_request_lines_carry_method_path_and_json_body():
    lines = request_lines([("GET", "/products/1"), ("POST", "/orders", {"items": [{"product_id": 2}]})])
    assert lines == 'GET\t/products/1\nPOST\t/orders\t{"items":[{"product_id":2}]}\n'


def test_bulk_seeding_fills_products_and_their_stock(db_uris):
    for service in ("products", "inventory"):
        upgrade(service, db_uris[f"{service}:Base"])
    catalogue = Catalogue(db_uris["products:Base"], db_uris["inventory:Base"])
    try:
        catalogue.grow_to(7, on_hand=1000)
        catalogue.grow_to(30)
        assert catalogue.count() == 30
    finally:
        catalogue.close()
    products, inventory = make_engine(db_uris["products:Base"]), make_engine(db_uris["inventory:Base"])
    with products.connect() as p, inventory.connect() as i:
        assert i.scalar(select(func.count()).select_from(catalogue.stock)) == 30
        assert p.execute(select(catalogue.product.c.available).where(catalogue.product.c.id <= 7)).scalars().all() \
            == [1000] * 7
        projected = dict(p.execute(select(catalogue.product.c.id, catalogue.product.c.available)).all())
        stocked = dict(i.execute(select(catalogue.stock.c.product_id, catalogue.stock.c.on_hand)).all())
    assert projected == stocked
    products.dispose()
    inventory.dispose()


def test_raw_produce_counts_every_delivered_message(tmp_path):
    port = free_port()
    broker = launch(port, log_path=tmp_path / "tansu.log")
    try:
        result = produce_floor(f"127.0.0.1:{port}", 200)
    finally:
        broker.terminate()
        broker.wait(10)
    assert (result.messages, result.errors) == (200, 0)


def test_profiles_charge_time_to_the_innermost_library_and_leave_the_idle_hub_out():
    raw = "\n".join([
        "main (eventlet/greenthread.py:1);publish (kombu/messaging.py:2);send (eventlet/greenio/base.py:3) 6",
        "main (eventlet/greenthread.py:1);execute (sqlalchemy/engine/base.py:5);read (pymysql/connections.py:6) 3",
        "main (eventlet/greenthread.py:1);run (eventlet/hubs/hub.py:7);Hub.do_poll (eventlet/hubs/epolls.py:8) 50",
        "main (eventlet/greenthread.py:1);sleep (eventlet/hubs/hub.py:9) 1",
    ])
    profile = profiling.summarise("gateway", raw)
    assert (profile.samples, profile.idle) == (10, 50)
    assert profile.by_category == {"AMQP client (kombu, py-amqp)": 60.0, "PyMySQL driver": 30.0,
                                   "eventlet hub, stdlib": 10.0}
    assert profile.top_self[0] == ("send (eventlet/greenio/base.py)", 60.0)


def test_the_report_compares_to_floors_and_judges_the_targets(tmp_path):
    settings = Settings()
    results = report.Results()
    results.target_size = 100_000
    results.floors = {"bare": [LoadResult("bare", 3000, 1.0, p99=20)], "hop": [LoadResult("hop", 470, 1.0)]}
    results.read = LoadResult("read", 1200, 1.0, p99=30)
    results.search = [SearchPoint(100_000, 12.0, [LoadResult("search (filters) at 100,000", 400, 1.0, p99=80)]),
                      SearchPoint(1_000_000, 0.0, skipped="skipped: too slow")]
    results.kafka_floor = Throughput("raw", 1000, 0.1)
    results.relay = Throughput("relay", 6000, 1.0, lag_ms=percentiles([100.0] * 99 + [900.0]))
    results.memory = {"read": {"gateway": 90.0, "products": 160.0}}

    text = report.render(results, settings, {"MariaDB": "10.11"}, datetime.now(), datetime.now())

    assert "| warm product read >= 0.5 x bare floor | 1,200 req/s vs 1,500 | **not met** |" in text
    assert "| search p99 < 50 ms at 100,000 products (filters and text) | full load 80.0 ms | **not met** |" in text
    assert "| relay >= 5,000 events/s, lag p99 < 1 s | 6,000/s, lag p99 900 ms | **met** |" in text
    assert "largest 160 MB | **not met**" in text
    assert "| read | 1,200 | 0.0 | 0.0 | 30.0 | 0 | 0.0 | 0.40 | bare |" in text
    assert "skipped: too slow" in text


def test_latency_targets_also_judge_the_light_load_runs():
    results = report.Results()
    results.target_size = 100_000
    results.floors = {"bare": [LoadResult("bare", 3000, 1.0)], "hop": [LoadResult("hop", 470, 1.0, p99=130)],
                      "hop_light": LoadResult("hop, light load (-c4)", 400, 1.0, p99=15)}
    search = SearchPoint(100_000, 12.0, [LoadResult("search (filters) at 100,000", 400, 1.0, p99=80),
                                         LoadResult("search (text) at 100,000", 300, 1.0, p99=95)])
    search.light = [LoadResult("search (filters) at 100,000, light load (-c4)", 200, 1.0, p99=30),
                    LoadResult("search (text) at 100,000, light load (-c4)", 150, 1.0, p99=45)]
    results.search = [search]
    results.orders = OrdersResult(LoadResult("POST /orders", 120, 1.0, p99=900),
                                  LoadResult("POST /orders, light load (-c4)", 60, 1.0, p99=120), 1800, 1800)

    rows = {row[0]: row[1:] for row in report.targets(results)}

    assert rows["search p99 < 50 ms at 100,000 products (filters and text)"] == [
        "full load 95.0 ms; light load 45.0 ms", "**met at light load** (not under the full load)"]
    assert rows["orders >= 100/s with p99 < 250 ms"] == ["120/s, p99 900 ms; light load 60/s, p99 120 ms",
                                                         "**not met**"]  # never both in one run
    search.light[1].p99 = 51
    rows = {row[0]: row[1:] for row in report.targets(results)}
    assert rows["search p99 < 50 ms at 100,000 products (filters and text)"][1] == "**not met**"


def test_a_delay_paces_each_wrk_connection(wrk, tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        result = run_wrk("paced", f"http://127.0.0.1:{port}", [("GET", "/")],
                         Load(threads=1, connections=1, seconds=2, delay_ms=200), wrk=wrk)
    finally:
        server.kill()
        server.wait()
    assert 3 <= result.requests <= 12 and result.errors == 0  # ~10 at 200 ms apart, unpaced it is thousands
