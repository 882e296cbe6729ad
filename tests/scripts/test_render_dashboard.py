"""scripts/render_dashboard.py against a real Prometheus (Debian's ``prometheus``; scripts/ensure-tools.sh installs
it) scraping a small real target: a process exposing the project's own metrics (common.metrics,
bridge.kafka_metrics) while it counts made-up calls, events and Kafka acks."""

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from scripts import render_dashboard

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "docs/grafana/pos-dashboard.json").read_text())
SCRAPE = 0.5  # seconds between scrapes: the whole module takes about 15 s
RATE_WINDOW = 3.0

needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="no prometheus binary: apt-get install prometheus (scripts/ensure-tools.sh)")

# The target: real prometheus_client metrics of the project, moving for at most 60 s.
TARGET = """
import random, sys, time
from prometheus_client import start_http_server
from bridge import kafka_metrics as kafka
from common.metrics import DB_STATEMENT_LATENCY, ENTRYPOINT_CALLS, ENTRYPOINT_LATENCY, count_domain_event
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
rng = random.Random(1)
for tick in range(600):
    for entrypoint, kind in (("get_product", "http"), ("create_order", "http"), ("get_product", "rpc")):
        service = "gateway" if kind == "http" else "products"
        outcome = "client_error" if tick % 10 == 0 else "success"
        ENTRYPOINT_CALLS.labels(service, entrypoint, kind, outcome).inc()
        ENTRYPOINT_LATENCY.labels(service, entrypoint, kind).observe(rng.uniform(0.002, 0.2))
    DB_STATEMENT_LATENCY.labels("products", "select").observe(rng.uniform(0.0005, 0.01))
    count_domain_event("orders", "order.created")
    if tick % 3:
        count_domain_event("orders", "order.paid")
        count_domain_event("payments", "payment.authorized")
    kafka.RELAYED.labels("pos.orders").inc()
    kafka.LAG.observe(rng.uniform(0.01, 0.3))
    kafka.IN_FLIGHT.set(tick % 4)
    time.sleep(0.1)
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus():
    """(url, start): a real Prometheus that has scraped the target for a few seconds."""
    port = free_port()
    target = subprocess.Popen([sys.executable, "-c", TARGET, str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        with render_dashboard.TemporaryPrometheus({"orders": f"127.0.0.1:{port}"}, SCRAPE) as url:
            start = time.time()
            deadline = start + 30
            while time.time() < deadline:  # until the target was scraped for longer than the rate window
                query = 'count_over_time(up{process="orders"}[1m]) and up == 1'
                up = render_dashboard.api(url, "query", query=query)["result"]
                if up and float(up[0]["value"][1]) * SCRAPE > RATE_WINDOW + 2:
                    break
                time.sleep(SCRAPE)
            else:
                pytest.fail("Prometheus did not scrape the target")
            yield url, start
    finally:
        target.kill()
        target.wait()


@needs_prometheus
def test_every_panel_expression_is_promql_that_prometheus_accepts(prometheus):
    url, _start = prometheus
    exprs = [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]
    assert len(exprs) >= len(DASHBOARD["panels"])
    for expr in exprs:
        expanded = render_dashboard.expand(expr, DASHBOARD, RATE_WINDOW, 60, SCRAPE)
        assert "$" not in expanded
        reply = requests.get(f"{url}/api/v1/query", params={"query": expanded}, timeout=10).json()
        assert reply["status"] == "success", (expanded, reply)


@needs_prometheus
def test_a_query_prometheus_refuses_is_reported():
    with render_dashboard.TemporaryPrometheus({}, 5) as url, pytest.raises(ValueError, match="bad_data"):
        render_dashboard.api(url, "query", query="sum by (service) (rate(x[5m])")


@needs_prometheus
def test_render_draws_every_panel_with_the_data_prometheus_has(prometheus, tmp_path):
    url, start = prometheus
    out = tmp_path / "dashboard.png"
    drawn = render_dashboard.render(url, DASHBOARD, start, time.time(), out, step=SCRAPE, rate_window=RATE_WINDOW,
                                    subtitle="test")
    assert set(drawn) == {panel["title"] for panel in DASHBOARD["panels"]}
    assert drawn["Requests per second by service"] == 2  # gateway, products
    assert drawn["Errors per second by service"] == 2  # (gateway, products) x client_error
    assert drawn["HTTP latency p95 by route (gateway)"] == 2  # get_product, create_order
    assert drawn["Kafka relay lag p95 (occurred_at to Kafka ack)"] == 2  # the p95 and the in-flight gauge
    assert drawn["Orders by status (events per minute)"] == 2  # order.created, order.paid
    assert drawn["Payments by outcome (events per minute)"] == 1
    assert drawn["Cache hit ratio by service"] == 0  # nothing the target exposes: drawn as "No data"
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.height > image.width * 0.5
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # drawn, not a blank page


def test_grafana_variables_are_expanded():
    expr = 'sum(rate(x{service=~"$service"}[$__rate_interval])) + sum(increase(y[$__range])) + ${service}'
    assert render_dashboard.expand(expr, DASHBOARD, 30, 600.4, 5) == (
        'sum(rate(x{service=~".*"}[30s])) + sum(increase(y[600s])) + .*')
    assert render_dashboard.legend("{{service}}.{{ entrypoint }}", {"service": "orders", "entrypoint": "get"}) == \
        "orders.get"
    assert render_dashboard.legend("", {"topic": "pos.orders"}) == '{topic="pos.orders"}'
