"""Render docs/grafana/pos-dashboard.json as a PNG from a real Prometheus (no Grafana here).

Starts a temporary Prometheus (Debian's ``prometheus``: scripts/ensure-tools.sh installs it) on a free loopback
port with a temporary data dir, scraping every process of ``scripts.run_system`` (``METRICS_BASE_PORT``.., the
gateway through its ``/metrics``) every ``--scrape-interval`` s, or uses ``--prometheus-url`` of one that already
scrapes them. For ``--duration`` s, unless ``--no-traffic``, wrk (bench/loadgen.py, Debian's ``wrk``) drives a
customer's requests through the public API: searches, product reads, a 404, orders paid with ``tok_visa`` or
declined with ``tok_chargeDeclined``. Then each panel's queries go to Prometheus's ``/api/v1/query_range`` and
matplotlib draws a Grafana-like grid:

    .venv/bin/python -m scripts.render_dashboard --base-url http://127.0.0.1:8000 --metrics-base-port 9101

With ``--prometheus-url`` and ``--no-traffic`` it draws the last ``--duration`` s at once.
"""

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from scripts.processes import stop_process
from scripts.run_system import NAMEKO_PROCESSES

ROOT = Path(__file__).resolve().parent.parent
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#37872d",
          "#c4162a", "#1f60c4", "#8f3bb8"]
BACKGROUND, PANEL, BORDER, TEXT, DIM = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9a"
LEGEND_ROWS = 8
ADDRESS = {"name": "Dash Board", "line1": "1 Metrics Way", "city": "Grafton", "postal_code": "10001",
           "country": "US"}


def scrape_targets(base_url, metrics_base_port):
    """{process: host:port} of every process: the gateway's API port (its /metrics route), the others' METRICS_PORT."""
    targets = {name: f"127.0.0.1:{metrics_base_port + index}"
               for index, (name, _) in enumerate(NAMEKO_PROCESSES) if name != "gateway"}
    return {**targets, "gateway": urlsplit(base_url).netloc}


def duration(seconds):
    """A Prometheus duration: whole seconds, else milliseconds (it takes no "0.5s")."""
    return f"{seconds:.0f}s" if float(seconds).is_integer() else f"{seconds * 1000:.0f}ms"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryPrometheus:
    """``with TemporaryPrometheus({process: host:port}) as url:`` a Prometheus of our own, gone afterwards."""

    def __init__(self, targets, scrape_interval=5.0, binary=None):
        self.targets, self.scrape_interval = targets, scrape_interval
        self.binary = binary or shutil.which("prometheus") or "prometheus"

    def __enter__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="pos-prometheus-"))
        interval = duration(self.scrape_interval)
        config = {"global": {"scrape_interval": interval, "scrape_timeout": interval},
                  "scrape_configs": [{"job_name": "pos", "static_configs": [
                      {"targets": [address], "labels": {"process": name}} for name, address in self.targets.items()]}]}
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(self.folder / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.folder / 'prometheus.yml'}", f"--storage.tsdb.path={self.folder}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self.url
            except requests.RequestException:
                pass
            time.sleep(0.2)
        log = (self.folder / "prometheus.log").read_text()[-2000:]
        self.__exit__()
        raise RuntimeError(f"Prometheus did not get ready: {log}")

    def __exit__(self, *_):
        stop_process(self.process)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def api(prometheus_url, path, **params):
    reply = requests.get(f"{prometheus_url}/api/v1/{path}", params=params, timeout=30)
    body = reply.json()
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def expand(expr, dashboard, rate_window, range_seconds, step):
    """Grafana's variables in ``expr``: each templating variable at its "All" value, and the built-in intervals."""
    values = {var["name"]: var.get("allValue", ".*") for var in dashboard.get("templating", {}).get("list", [])}
    values.update(__rate_interval=duration(rate_window), __range=duration(round(range_seconds)),
                  __interval=duration(step))
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m[1], m[0]), expr)


def legend(template, labels):
    if not template:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)


def panel_series(prometheus_url, dashboard, panel, start, end, step, rate_window):
    """[(legend, values on the step grid from start to end, NaN where Prometheus has no value)] of ``panel``."""
    grid = [start + i * step for i in range(int((end - start) // step) + 1)]
    lines = []
    for target in panel.get("targets", []):
        expr = expand(target["expr"], dashboard, rate_window, end - start, step)
        for result in api(prometheus_url, "query_range", query=expr, start=start, end=grid[-1], step=step)["result"]:
            known = {round(float(t), 3): float(v) for t, v in result["values"]}
            values = [known.get(round(t, 3), math.nan) for t in grid]
            if any(not math.isnan(v) for v in values):
                lines.append((legend(target.get("legendFormat"), result["metric"]), values))
    return grid, lines


def formatter(unit):
    def seconds(value):
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"

    return {"s": seconds, "percentunit": lambda v: f"{v * 100:.0f}%", "reqps": lambda v: f"{v:.3g} req/s",
            "ops": lambda v: f"{v:.3g} ops/s"}.get(unit, lambda v: f"{v:.3g}")


def last_value(values):
    return next((v for v in reversed(values) if not math.isnan(v)), math.nan)


def draw_panel(fig, panel, rect, grid, lines):
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    left, bottom, width, height = rect
    fig.patches.append(FancyBboxPatch((left, bottom), width, height, boxstyle="round,pad=0,rounding_size=0.002",
                                      transform=fig.transFigure, facecolor=PANEL, edgecolor=BORDER, zorder=-10))
    fig.text(left + 0.006, bottom + height - 0.006, panel["title"], color=TEXT, fontsize=11, weight="bold", va="top")
    ax = fig.add_axes((left + 0.045, bottom + 0.025, width * 0.56, height - 0.06), facecolor=PANEL)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(colors=DIM, labelsize=9, length=0, pad=5)
    ax.grid(color=BORDER, linewidth=0.6)
    fmt = formatter(panel.get("fieldConfig", {}).get("defaults", {}).get("unit"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: datetime.fromtimestamp(v, UTC).strftime("%H:%M:%S")))
    ax.set_xlim(grid[0], grid[-1])
    if not lines:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", va="center", color=DIM, fontsize=11)
        return
    lines = sorted(lines, key=lambda line: -abs(last_value(line[1])) if not math.isnan(last_value(line[1])) else 0)
    for index, (_name, values) in enumerate(lines):
        ax.plot(grid, values, color=COLORS[index % len(COLORS)], linewidth=1.6)
    ax.set_ylim(bottom=0)
    right = (width - 0.053) / (width * 0.56)  # the panel's right edge in axes units: Grafana's legend table
    ax.text(right, 1.0, "Last *", transform=ax.transAxes, color=DIM, fontsize=9, va="top", ha="right")
    for row, (name, values) in enumerate(lines[:LEGEND_ROWS]):
        y = 0.9 - row * 0.11
        ax.text(1.04, y, "\u2501", transform=ax.transAxes, color=COLORS[row % len(COLORS)], fontsize=10, va="top")
        ax.text(1.09, y, name if len(name) <= 34 else name[:33] + "\u2026", transform=ax.transAxes, color=TEXT,
                fontsize=9, va="top")
        ax.text(right, y, fmt(last_value(values)), transform=ax.transAxes, color=TEXT, fontsize=9, va="top",
                ha="right")
    if len(lines) > LEGEND_ROWS:
        ax.text(1.09, 0.9 - LEGEND_ROWS * 0.11, f"+ {len(lines) - LEGEND_ROWS} more series",
                transform=ax.transAxes, color=DIM, fontsize=9, va="top")


def render(prometheus_url, dashboard, start, end, out, step=5.0, rate_window=30.0, subtitle=""):
    """Query every panel over [start, end] and draw the PNG; returns {panel title: series with data}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    header, unit = 1.3, 0.34  # inches: the title block, one Grafana grid row
    total = header + rows * unit
    fig = plt.figure(figsize=(22, total), dpi=90, facecolor=BACKGROUND)
    fig.text(0.01, 1 - 0.25 / total, dashboard.get("title", "Dashboard"), color=TEXT, fontsize=18, weight="bold",
             va="top")
    fig.text(0.01, 1 - 0.75 / total, subtitle, color=DIM, fontsize=10.5, va="top")
    drawn = {}
    for panel in panels:
        grid, lines = panel_series(prometheus_url, dashboard, panel, start, end, step, rate_window)
        drawn[panel["title"]] = len(lines)
        pos = panel["gridPos"]
        rect = (pos["x"] / 24 + 0.004, (rows - pos["y"] - pos["h"]) * unit / total + 0.003,
                pos["w"] / 24 - 0.008, pos["h"] * unit / total - 0.006)
        draw_panel(fig, panel, rect, grid, lines)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=BACKGROUND)
    plt.close(fig)
    return drawn


def drive_traffic(base_url, seconds, delay_ms=50):
    """wrk (bench/loadgen.py) cycling a customer's requests for ``seconds``, two connections each pausing
    ``delay_ms`` before a request; returns its LoadResult."""
    from bench.infra import ensure_wrk
    from bench.loadgen import Load, run_wrk
    from bench.scenarios import customer_token

    reply = requests.get(f"{base_url}/products", params={"in_stock": "true", "page_size": 100}, timeout=30)
    products = [item["id"] for item in reply.json()["items"]]
    searches = [("GET", f"/products?q={word}&sort={sort}") for word in ("coffee", "tea", "mug", "grinder", "cake")
                for sort in ("price", "-price", "name")]
    mix = []
    for index, pid in enumerate(products):  # one order in about twenty requests, declined one time in four
        mix += [searches[index % len(searches)], ("GET", f"/products/{pid}")] * 9 + [("GET", "/categories")]
        mix.append(("POST", "/orders", {"items": [{"product_id": pid, "quantity": 1}], "shipping_address": ADDRESS,
                                        "payment_token": "tok_chargeDeclined" if index % 4 == 3 else "tok_visa"}))
        if index % 5 == 0:
            mix.append(("GET", "/products/987654321"))  # a 404
    load = Load(threads=1, connections=2, seconds=seconds, delay_ms=delay_ms)
    return run_wrk("dashboard", base_url, mix, load, token=customer_token(base_url), wrk=ensure_wrk())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dashboard", default=str(ROOT / "docs/grafana/pos-dashboard.json"))
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the gateway")
    parser.add_argument("--metrics-base-port", type=int, default=int(os.environ.get("METRICS_BASE_PORT", "9101")))
    parser.add_argument("--prometheus-url", help="an existing Prometheus scraping the system (none is started)")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of traffic (or of waiting)")
    parser.add_argument("--scrape-interval", type=float, default=5.0)
    parser.add_argument("--rate-window", type=float, default=30.0, help="$__rate_interval in seconds")
    parser.add_argument("--no-traffic", action="store_true", help="the system gets its load elsewhere")
    parser.add_argument("--out", default=str(ROOT / "docs/images/dashboard.png"))
    args = parser.parse_args(argv)
    dashboard = json.loads(Path(args.dashboard).read_text())
    base_url = args.base_url.rstrip("/")
    prometheus = None
    if args.prometheus_url:
        url = args.prometheus_url.rstrip("/")
    else:
        prometheus = TemporaryPrometheus(scrape_targets(base_url, args.metrics_base_port), args.scrape_interval)
        url = prometheus.__enter__()
        print(f"Prometheus {url} scraping {len(prometheus.targets)} processes", flush=True)
    try:
        start, traffic = time.time(), "none"
        if not args.no_traffic:
            result = drive_traffic(base_url, args.duration)
            traffic = f"wrk, {result.requests} requests ({result.rps:.1f}/s, {result.errors} errors)"
        elif prometheus:
            time.sleep(args.duration)
        else:
            start -= args.duration
        if prometheus:
            time.sleep(2 * args.scrape_interval)  # the last scrapes of the traffic
        end = time.time()
        up = api(url, "query", query="up", time=end)["result"]
        first, last = (datetime.fromtimestamp(t, UTC) for t in (start, end))
        version = api(url, "status/buildinfo").get("version", "?")
        subtitle = (f"Rendered by scripts/render_dashboard.py, not a Grafana screenshot: every panel of "
                    f"docs/grafana/pos-dashboard.json queried from Prometheus {version} (query_range, step "
                    f"{args.scrape_interval:g} s) scraping {sum(r['value'][1] == '1' for r in up)}/{len(up)} processes "
                    f"every {args.scrape_interval:g} s, {first:%Y-%m-%d %H:%M:%S}-{last:%H:%M:%S} UTC; "
                    f"\\$__rate_interval = {args.rate_window:g} s.\nTraffic through the public API meanwhile: "
                    f"{traffic} (one customer searching, reading products, ordering with tok_visa / "
                    "tok_chargeDeclined).")
        drawn = render(url, dashboard, start, end, args.out, args.scrape_interval, args.rate_window, subtitle)
    finally:
        if prometheus:
            prometheus.__exit__()
    print(json.dumps(drawn, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
