"""The bench harness works on tiny numbers: it loads a real floor, seeds, produces to Kafka and writes a report.

Nothing here asserts speed: speed is what `make bench` reports.
"""

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from urllib.parse import unquote

import pymysql
import pytest
from kombu import Connection
from nameko import config
from sqlalchemy import func, select

from bench import infra, profiling, report, results_json
from bench.floors import HOP, Experiment, run_floor
from bench.kafka import Throughput, percentiles, produce_floor
from bench.loadgen import Load, LoadResult, request_lines, run_wrk
from bench.otlp_sink import OtlpSink
from bench.scenarios import OrdersResult, SearchPoint
from bench.seed import Catalogue
from bench.settings import Settings
from bench.targets import targets
from bench.whole_system import Counters, CpuWindow, server_pids
from common.db import make_engine
from common.migrations import upgrade
from common.timers import wait_for
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

    result = run_floor("hop", experiment, tiny, env, wrk, tmp_path / "log", servers=server_pids())

    assert result.requests > 0
    assert result.errors == 0, result.error_kinds
    assert 0 < result.p50 <= result.p99 <= result.max
    assert {"floor_hop_0", "floor_constant_0", "rabbitmq"} <= set(result.cpu_seconds)
    assert result.cpu_seconds["floor_hop_0"] > 0 and result.cpu_ms_per_request() > 0


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
    assert "| whole-system CPU per order <= 15 x one hop's | not measured | - |" in text
    assert "| relay >= 5,000 events/s, lag p99 < 1 s | 6,000/s, lag p99 900 ms | **met** |" in text
    assert "largest 160 MB | **not met**" in text
    assert "| read | 1,200 | 0.0 | 0.0 | 30.0 | 0 | 0.0 | 0.40 | bare |" in text
    assert "skipped: too slow" in text


def measured_run():
    results = report.Results()
    results.target_size = 100_000
    hop = LoadResult("hop", 500, 1.0, p99=130, cpu_seconds={"floor_hop_0": 0.6, "rabbitmq": 0.4})  # 2 ms each
    results.floors = {"bare": [LoadResult("bare", 3000, 1.0)], "hop": [hop],
                      "hop_light": LoadResult("hop, light load (-c4)", 400, 1.0, p99=15)}
    search = SearchPoint(100_000, 12.0, [LoadResult("search (filters) at 100,000", 400, 1.0, p99=80),
                                         LoadResult("search (text) at 100,000", 300, 1.0, p99=95)])
    search.light = [LoadResult("search (filters) at 100,000, light load (-c4)", 200, 1.0, p99=30),
                    LoadResult("search (text) at 100,000, light load (-c4)", 150, 1.0, p99=45)]
    results.search = [search, SearchPoint(1_000_000, 0.0, skipped="skipped: seeding too slow")]
    results.orders = OrdersResult(LoadResult("POST /orders", 30, 1.0, p99=900),
                                  LoadResult("POST /orders, light load (-c4)", 10, 1.0, p99=70), 40, 40,
                                  {"p50": 100.0, "p99": 300.0})
    results.orders_cost = {"cpu_seconds": {"orders": 0.8, "mariadb": 0.2}, "sql": 1200, "amqp": 600, "rpc": 200}
    results.idle = {"seconds": 20, "cpu_seconds": {"payments": 0.1, "rabbitmq": 0.3}}
    return results


def test_targets_are_ratios_to_the_floors_of_the_same_run():
    rows = {t.name: (t.measured, t.met) for t in targets(measured_run())}

    assert rows["whole-system CPU per order <= 15 x one hop's"] == ("25.0 ms = 12.5 hops (hop 2.00 ms)", True)
    assert rows["orders/s >= hop req/s / 20 (full load)"] == ("30.0/s vs 25.0", True)
    assert rows["POST /orders p99 at light load <= 5 x hop light p99"] == ("70 ms vs 75", True)
    assert rows["time to PAID p99 <= 15 x hop light p99 (every order of the phase)"] == ("300 ms vs 225", False)
    assert rows["whole system at rest < 10 ms CPU per second"] == ("20.0 ms/s", False)
    assert rows["search text p99 at light load <= 3 x hop light p99 at 100,000 products"] == ("45.0 ms vs 45.0", True)
    assert rows["search filters p99 at light load <= 3 x hop light p99 at 1,000,000 products"] == (
        "skipped: seeding too slow", False)


def test_benchmarks_json_has_the_issues_layout_with_null_for_what_was_not_measured():
    results = measured_run()
    data = json.loads(results_json.render(results, Settings(), {}, datetime.now(), datetime.now()))

    assert data["floors"]["hop"] == {"req_per_s": 500.0, "p50_ms": 0.0, "p99_ms": 130.0, "cpu_ms_per_request": 2.0,
                                     "errors": 0, "light_p99_ms": 15.0}
    assert data["floors"]["bare"]["cpu_ms_per_request"] is None
    orders = data["orders"]
    assert (orders["cpu_ms_per_order"], orders["hops_per_order"]) == (25.0, 12.5)
    assert orders["cpu_ms_per_order_by_process"] == {"orders": 20.0, "mariadb": 5.0}
    assert (orders["sql_per_order"], orders["amqp_per_order"], orders["rpc_per_order"]) == (30.0, 15.0, 5.0)
    assert (orders["time_to_paid_p99_ms"], orders["light_p99_ms"], orders["orders_per_s"]) == (300.0, 70.0, 30.0)
    assert data["search"]["100000"]["text"] == {"req_per_s": 300.0, "p99_ms": 95.0, "light_p99_ms": 45.0,
                                                "errors": 0}
    assert data["search"]["1000000"] == {"skipped": "skipped: seeding too slow"}
    assert data["read"] is None and data["relay"] is None
    assert data["idle_cpu_ms_per_s"] == 20.0
    assert {"target": "whole system at rest < 10 ms CPU per second", "measured": "20.0 ms/s",
            "met": False} in data["targets"]


def test_a_cpu_window_counts_a_busy_process_and_not_an_idle_one():
    # the window opens once both interpreters are up (a loaded machine can take a second to start one), and the
    # spinner has the time of the window to itself
    spin = "import time\nprint(flush=True)\nend = time.time() + 3\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE)
    idle = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(3)"],
                            stdout=subprocess.PIPE)
    try:
        busy.stdout.readline(), idle.stdout.readline()
        window = CpuWindow({"busy": busy.pid, "idle": idle.pid}).start()
        time.sleep(1.2)
        used = window.stop()
    finally:
        busy.wait()
        idle.wait()
    assert used["busy"] > 0.3 and used["idle"] < 0.1


def test_counters_see_sql_statements_and_amqp_publishes_of_their_vhost(rabbit_config):
    vhost = unquote(config["AMQP_URI"].rsplit("/", 1)[1])
    counters = Counters(vhost).start()
    connection = pymysql.connect(**infra.MYSQL)
    with connection.cursor() as cursor:
        for _ in range(25):
            cursor.execute("SELECT 1")
    connection.close()
    with Connection(config["AMQP_URI"]) as amqp:
        producer = amqp.Producer()
        for _ in range(7):
            producer.publish({"n": 1}, exchange="amq.topic", routing_key="bench.count")

    # RabbitMQ's statistics arrive every 5 s, and later on a loaded machine
    assert wait_for(lambda: (counters.delta()["amqp"] or 0) >= 7, 40, interval=1)
    delta = counters.delta()
    assert delta["amqp"] == 7 and delta["sql"] >= 25


def test_a_delay_paces_each_wrk_connection(wrk, tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: infra.port_answers("127.0.0.1", port), 30, interval=0.1)
        result = run_wrk("paced", f"http://127.0.0.1:{port}", [("GET", "/")],
                         Load(threads=1, connections=1, seconds=2, delay_ms=200), wrk=wrk)
    finally:
        server.kill()
        server.wait()
    assert 3 <= result.requests <= 12 and result.errors == 0  # ~10 at 200 ms apart, unpaced it is thousands


def test_the_trace_sink_takes_what_a_real_otlp_exporter_sends():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    sink = OtlpSink()
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")))
        with provider.get_tracer("bench").start_as_current_span("an order"):
            pass
        provider.shutdown()
    finally:
        sink.stop()
    assert sink.exports == 1 and sink.bytes > 20


def test_the_processes_the_bench_starts_import_the_checkout_it_runs_from(tmp_path, monkeypatch):
    """With the venv of another checkout (its editable install first on sys.path), a bench run from a worktree
    must still start that worktree's code."""
    from types import SimpleNamespace

    from bench.run import bench_env
    from scripts.processes import ROOT

    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = bench_env(Settings(), SimpleNamespace(amqp_uri="pyamqp://guest:guest@127.0.0.1:5672/"),
                    SimpleNamespace(env=dict), SimpleNamespace(bootstrap="127.0.0.1:9092"), "redis://127.0.0.1/1")
    where = subprocess.run([sys.executable, "-c", "import services, bench; print(services.__file__, bench.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(ROOT) + os.sep) for path in where)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), str(tmp_path)]  # what was set before stays, after
