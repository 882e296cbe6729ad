"""The PromQL subset of scripts/render_dashboard.py on synthetic scrapes, and the picture it draws from them."""

import json
import math
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from scripts import render_dashboard
from scripts.promql_subset import Scrapes, Unsupported, legend, parse, parse_exposition, query_range

DASHBOARD = Path(__file__).resolve().parents[2] / "docs/grafana/pos-dashboard.json"
WINDOW = 30.0


def series(name, value, instance="orders", **labels):
    return (name, tuple(sorted({**labels, "instance": instance}.items()))), value


def scrapes_of(*moments):
    """``moments``: (t, [series(...), ...]) pairs."""
    scrapes = Scrapes()
    for at, samples in moments:
        scrapes.add(at, dict(samples))
    return scrapes


def at_last(expr, scrapes):
    """``{labels as dict items: value}`` of ``expr`` at the last scrape."""
    result = query_range(expr, scrapes, WINDOW)
    return {labels: points[-1][1] for labels, points in result.items() if points[-1][0] == scrapes.times[-1]}


def calls(value, service, entrypoint, outcome="success", instance=None):
    return series("pos_entrypoint_calls_total", value, instance or service, service=service,
                  entrypoint=entrypoint, kind="rpc", outcome=outcome)


def test_rate_is_the_counter_increase_over_the_scrapes_in_the_window_summed_by_label():
    scrapes = scrapes_of(
        (0, [calls(0, "orders", "create_order"), calls(5, "orders", "get_order"), calls(1, "products", "get")]),
        (10, [calls(10, "orders", "create_order"), calls(5, "orders", "get_order"), calls(2, "products", "get")]),
        (20, [calls(30, "orders", "create_order"), calls(25, "orders", "get_order"), calls(3, "products", "get")]),
    )
    result = at_last('sum by (service) (rate(pos_entrypoint_calls_total{service=~"$service"}[$__rate_interval]))',
                     scrapes)
    assert result == {(("service", "orders"),): pytest.approx((30 + 20) / 20),
                      (("service", "products"),): pytest.approx(2 / 20)}


def test_rate_leaves_out_scrapes_older_than_the_window_and_series_seen_once():
    scrapes = scrapes_of((0, [calls(100, "orders", "a")]), (20, [calls(110, "orders", "a")]),
                         (40, [calls(130, "orders", "a"), calls(7, "orders", "b")]))
    result = at_last("sum by (entrypoint) (rate(pos_entrypoint_calls_total[25s]))", scrapes)
    assert result == {(("entrypoint", "a"),): pytest.approx(20 / 20)}


def test_a_counter_that_drops_was_reset_and_counts_from_zero():
    scrapes = scrapes_of((0, [calls(10, "orders", "a")]), (10, [calls(15, "orders", "a")]),
                         (20, [calls(3, "orders", "a")]))
    assert at_last("sum(increase(pos_entrypoint_calls_total[$__range]))", scrapes) == {(): pytest.approx(8)}


def test_matchers_equal_not_equal_and_anchored_regex():
    def events(value, event_type):
        return series("pos_domain_events_total", value, source="orders", event_type=event_type)

    scrapes = scrapes_of(
        (0, [events(0, "order.created"), events(0, "order.paid"), events(0, "reorder.created")]),
        (30, [events(6, "order.created"), events(3, "order.paid"), events(9, "reorder.created")]),
    )
    per_minute = at_last('sum by (event_type) (rate(pos_domain_events_total{event_type=~"order\\\\..*"}[1m])) * 60',
                         scrapes)
    assert per_minute == {(("event_type", "order.created"),): pytest.approx(12),
                          (("event_type", "order.paid"),): pytest.approx(6)}
    others = at_last('sum(rate(pos_domain_events_total{event_type!="order.paid", event_type!~"re.*"}[1m]))',
                     scrapes)
    assert others == {(): pytest.approx(6 / 30)}


def buckets(counts, instance="gateway", entrypoint="get_product"):
    bounds = ["0.1", "0.5", "+Inf"]
    return [series("pos_entrypoint_latency_seconds_bucket", count, instance, service="gateway", kind="http",
                   entrypoint=entrypoint, le=le) for le, count in zip(bounds, counts, strict=True)]


@pytest.mark.parametrize("quantile, expected", [(0.5, 0.1), (0.7, 0.1 + 0.4 * 20 / 40), (0.95, 0.5), (0.25, 0.05)])
def test_histogram_quantile_interpolates_inside_the_bucket_of_the_rank(quantile, expected):
    # 100 observations in the window: 50 up to 0.1 s, 40 more up to 0.5 s, 10 above
    scrapes = scrapes_of((0, buckets([20, 30, 40])), (10, buckets([70, 120, 140])))
    expr = (f"histogram_quantile({quantile}, sum by (le, entrypoint) "
            f'(rate(pos_entrypoint_latency_seconds_bucket{{service="gateway", kind="http"}}[$__rate_interval])))')
    assert at_last(expr, scrapes) == {(("entrypoint", "get_product"),): pytest.approx(expected)}


def test_histogram_quantile_sums_the_buckets_of_every_process_and_skips_an_idle_histogram():
    scrapes = scrapes_of(
        (0, buckets([0, 0, 0], "a") + buckets([0, 0, 0], "b") + buckets([5, 5, 5], "a", "idle")),
        (10, buckets([10, 10, 10], "a") + buckets([0, 10, 10], "b") + buckets([5, 5, 5], "a", "idle")),
    )
    expr = "histogram_quantile(0.75, sum by (le, entrypoint) (rate(pos_entrypoint_latency_seconds_bucket[1m])))"
    assert at_last(expr, scrapes) == {(("entrypoint", "get_product"),): pytest.approx(0.1 + 0.4 * 5 / 10)}


def test_vectors_divide_on_matching_labels_and_zero_over_zero_is_no_value():
    def cache(value, service, result):
        return series("pos_cache_requests_total", value, service, service=service, result=result)

    scrapes = scrapes_of(
        (0, [cache(0, "products", "hits"), cache(0, "products", "misses"), cache(4, "orders", "hits"),
             cache(0, "orders", "misses")]),
        (10, [cache(30, "products", "hits"), cache(10, "products", "misses"), cache(4, "orders", "hits"),
              cache(0, "orders", "misses")]),
    )
    expr = ('sum by (service) (rate(pos_cache_requests_total{result="hits"}[$__rate_interval])) / '
            "sum by (service) (rate(pos_cache_requests_total[$__rate_interval]))")
    result = at_last(expr, scrapes)
    assert result[(("service", "products"),)] == pytest.approx(0.75)
    assert math.isnan(result[(("service", "orders"),)])


def test_a_gauge_is_read_from_the_latest_scrape():
    def backlog(value, service):
        return series("pos_outbox_backlog", value, service, service=service)

    scrapes = scrapes_of((0, [backlog(3, "orders")]), (10, [backlog(1, "orders"), backlog(2, "inventory")]))
    result = query_range('sum by (service) (pos_outbox_backlog{service=~"$service"})', scrapes, WINDOW)
    assert result == {(("service", "orders"),): [(0, 3), (10, 1)], (("service", "inventory"),): [(10, 2)]}


def test_real_exposition_text_round_trips_through_the_evaluator():
    registry = CollectorRegistry()
    requests_total = Counter("pos_entrypoint_calls_total", "calls", ["service", "outcome"], registry=registry)
    latency = Histogram("pos_kafka_relay_lag_seconds", "lag", buckets=(0.1, 1), registry=registry)
    scrapes = Scrapes()
    for at, (successes, lags) in enumerate([(0, []), (40, [0.05] * 8 + [0.5, 5])]):
        requests_total.labels("orders", "success").inc(successes)
        for lag in lags:
            latency.observe(lag)
        scrapes.add(at * 20.0, parse_exposition(generate_latest(registry).decode(), "kafka_bridge"))
    assert at_last("sum by (service) (rate(pos_entrypoint_calls_total[1m]))", scrapes) == {
        (("service", "orders"),): pytest.approx(2.0)}
    lag = at_last("histogram_quantile(0.85, sum by (le) (rate(pos_kafka_relay_lag_seconds_bucket[1m])))", scrapes)
    assert lag == {(): pytest.approx(0.1 + 0.9 * (8.5 - 8) / 1)}


@pytest.mark.parametrize("expr", ["avg_over_time(pos_outbox_backlog[5m])", "sum without (service) (x)",
                                  "rate(x[5m]) offset 5m", 'x{a=="b"}'])
def test_queries_outside_the_subset_are_refused(expr):
    with pytest.raises(Unsupported):
        parse(expr)


def test_every_query_of_the_dashboard_is_in_the_subset():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    assert len(exprs) >= len(panels)
    for expr in exprs:
        parse(expr)


def test_legend_fills_the_template_with_the_labels():
    assert legend("{{service}}.{{ entrypoint }}", (("entrypoint", "get"), ("service", "orders"))) == "orders.get"
    assert legend("in flight", ()) == "in flight"


def test_render_draws_every_panel_into_a_png(tmp_path):
    scrapes = scrapes_of((0, [calls(0, "orders", "a")] + buckets([0, 0, 0])),
                         (10, [calls(10, "orders", "a")] + buckets([5, 8, 9])))
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"].append({**dashboard["panels"][0], "title": "Unsupported", "gridPos": {
        "x": 0, "y": 48, "w": 12, "h": 8}, "targets": [{"expr": "avg_over_time(x[1m])"}]})
    out = tmp_path / "dashboard.png"
    render_dashboard.render(dashboard, scrapes, {"processes": 1, "interval": 10, "rate_window": WINDOW}, out)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.height > image.width * 0.5
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # drawn, not a blank page
