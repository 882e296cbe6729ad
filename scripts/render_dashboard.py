"""Render docs/grafana/pos-dashboard.json as a PNG from live scrapes of a running system (no Grafana here).

Scrapes the Prometheus text of every process of ``scripts.run_system`` (the gateway's ``/metrics``, the other
processes' ``METRICS_PORT``) every ``--interval`` seconds for ``--duration`` seconds while light traffic goes
through the public API (a registered customer searching, reading products and ordering with ``tok_visa`` and
``tok_chargeDeclined``), evaluates each panel with ``scripts.promql_subset`` and draws a Grafana-like grid:

    .venv/bin/python -m scripts.render_dashboard --base-url http://127.0.0.1:8000 --metrics-base-port 9101

``--save-scrapes FILE`` keeps the scrapes; ``--from-scrapes FILE`` renders them again without a running system.
"""

import argparse
import json
import math
import os
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from random import Random

import requests

from scripts.promql_subset import Scrapes, Unsupported, legend, parse_exposition, query_range
from scripts.run_system import NAMEKO_PROCESSES

ROOT = Path(__file__).resolve().parent.parent
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#37872d",
          "#c4162a", "#1f60c4", "#8f3bb8"]
BACKGROUND, PANEL, BORDER, TEXT, DIM = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9a"
LEGEND_ROWS = 8
ADDRESS = {"name": "Dash Board", "line1": "1 Metrics Way", "city": "Grafton", "postal_code": "10001",
           "country": "US"}


def scrape_targets(base_url, metrics_base_port):
    """(instance, url) per process: the gateway through its /metrics route, the others on their METRICS_PORT."""
    targets = [(name, f"http://127.0.0.1:{metrics_base_port + index}/metrics")
               for index, (name, _) in enumerate(NAMEKO_PROCESSES) if name != "gateway"]
    return targets + [("gateway", f"{base_url}/metrics")]


def scrape(targets, failures):
    samples = {}
    for instance, url in targets:
        try:
            reply = requests.get(url, timeout=2)
            reply.raise_for_status()
            samples.update(parse_exposition(reply.text, instance))
        except requests.RequestException:
            failures[instance] += 1
    return samples


class Traffic:
    """A customer's light load on the public API, in a thread; ``counts`` tallies the answers by status."""

    def __init__(self, base_url, seed=7):
        self.base_url, self.rng, self.counts = base_url, Random(seed), Counter()
        self.session, self.stopped = requests.Session(), threading.Event()
        self.products, self.paid_candidates = [], []

    def call(self, method, path, **kwargs):
        try:
            reply = self.session.request(method, f"{self.base_url}{path}", timeout=15, **kwargs)
        except requests.RequestException:
            self.counts["no answer"] += 1
            return None
        self.counts[f"{reply.status_code // 100}xx"] += 1
        return reply

    def sign_up(self):
        account = {"email": f"dashboard-{uuid.uuid4().hex[:10]}@example.com", "password": "dashboard-pass-1",
                   "name": "Dashboard Customer"}
        self.call("POST", "/auth/register", json=account)
        self.call("POST", "/auth/token", json={"email": account["email"], "password": "wrong-password"})
        reply = self.call("POST", "/auth/token", json={k: account[k] for k in ("email", "password")})
        self.session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"

    def browse(self):
        word = self.rng.choice(["coffee", "tea", "mug", "grinder", "cake", "blend"])
        self.call("GET", "/products", params={"q": word, "sort": self.rng.choice(["price", "-price", "name"])})
        if self.products:
            self.call("GET", f"/products/{self.rng.choice(self.products)}")
        roll = self.rng.random()
        if roll < 0.1:
            self.call("GET", "/categories")
        elif roll < 0.15:
            self.call("GET", "/products/987654321")
        elif roll < 0.18:
            self.call("GET", "/products", params={"sort": "cheapest"})

    def order(self):
        token = self.rng.choice(["tok_visa", "tok_visa", "tok_visa", "tok_chargeDeclined"])
        items = [{"product_id": self.rng.choice(self.products), "quantity": self.rng.randint(1, 2)}]
        reply = self.call("POST", "/orders", json={"items": items, "shipping_address": ADDRESS,
                                                   "payment_token": token})
        if reply is not None and reply.status_code == 201 and token == "tok_visa":
            self.paid_candidates.append(reply.json()["id"])
        if len(self.paid_candidates) > 2 and self.rng.random() < 0.3:
            # a cancelled PAID order is refunded: payment.refunded and order.cancelled on the dashboard
            order_id = self.paid_candidates.pop(0)
            self.call("POST", f"/orders/{order_id}/cancel")

    def load_catalogue(self):
        reply = self.call("GET", "/products", params={"in_stock": "true", "page_size": 100})
        self.products = [item["id"] for item in reply.json()["items"]] if reply is not None and reply.ok else []

    def run(self, reads_per_second=4.0, order_every=5.0):
        self.sign_up()
        self.load_catalogue()
        next_order = time.monotonic() + order_every
        while not self.stopped.wait(1 / reads_per_second):
            self.browse()
            if self.products and time.monotonic() >= next_order:
                next_order += order_every
                self.order()

    def start(self):
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


def collect(targets, duration, interval, traffic=None):
    scrapes, failures = Scrapes(), Counter()
    deadline = time.time() + duration
    thread = traffic.start() if traffic else None
    try:
        while True:
            now = time.time()
            scrapes.add(now, scrape(targets, failures))
            print(f"scrape {len(scrapes.times)}: {sum(map(len, scrapes.samples[-1:]))} samples", flush=True)
            if now + interval > deadline:
                break
            time.sleep(max(0.0, now + interval - time.time()))
    finally:
        if traffic:
            traffic.stopped.set()
            thread.join(20)
    return scrapes, failures


def save_scrapes(path, scrapes, meta):
    rows = [{"t": at, "samples": [[name, list(labels), value] for (name, labels), value in samples.items()]}
            for at, samples in zip(scrapes.times, scrapes.samples, strict=True)]
    Path(path).write_text(json.dumps({"meta": meta, "scrapes": rows}))


def load_scrapes(path):
    data, scrapes = json.loads(Path(path).read_text()), Scrapes()
    for row in data["scrapes"]:
        scrapes.add(row["t"], {(name, tuple(map(tuple, labels))): value for name, labels, value in row["samples"]})
    return scrapes, data["meta"]


# ---------------------------------------------------------------- rendering

def formatter(unit):
    def seconds(value):
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"

    return {
        "s": seconds, "percentunit": lambda v: f"{v * 100:.0f}%", "reqps": lambda v: f"{v:.3g} req/s",
        "ops": lambda v: f"{v:.3g} ops/s",
    }.get(unit, lambda v: f"{v:.3g}")


def panel_series(panel, scrapes, rate_window):
    """[(legend, [(t, v)])] of every target of ``panel``; raises Unsupported for a query outside the subset."""
    lines = []
    for target in panel.get("targets", []):
        for labels, points in sorted(query_range(target["expr"], scrapes, rate_window).items()):
            # a scrape without a value is a gap, as Grafana draws it, not a line bridging it
            known = dict(points)
            filled = [(moment, known.get(moment, math.nan)) for moment in scrapes.times]
            lines.append((legend(target.get("legendFormat"), labels), filled))
    return lines


def last_value(points):
    return next((v for _, v in reversed(points) if not math.isnan(v)), math.nan)


def draw_panel(fig, panel, rect, scrapes, rate_window, start):
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    left, bottom, width, height = rect
    fig.patches.append(FancyBboxPatch((left, bottom), width, height, boxstyle="round,pad=0,rounding_size=0.002",
                                      transform=fig.transFigure, facecolor=PANEL, edgecolor=BORDER, zorder=-10))
    fig.text(left + 0.006, bottom + height - 0.006, panel["title"], color=TEXT, fontsize=11, weight="bold",
             va="top")
    ax = fig.add_axes((left + 0.045, bottom + 0.025, width * 0.56, height - 0.06), facecolor=PANEL)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(colors=DIM, labelsize=9, length=0, pad=5)
    ax.grid(color=BORDER, linewidth=0.6)
    fmt = formatter(panel.get("fieldConfig", {}).get("defaults", {}).get("unit"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: datetime.fromtimestamp(start + v, UTC).strftime("%H:%M:%S")))
    ax.set_xlim(0, max(1.0, scrapes.times[-1] - start))
    try:
        lines = [(name, points) for name, points in panel_series(panel, scrapes, rate_window)
                 if any(not math.isnan(v) for _, v in points)]
    except Unsupported as error:
        return note(ax, f"not evaluated by this script:\n{error}")
    if not lines:
        return note(ax, "No data")
    lines.sort(key=lambda line: -abs(last_value(line[1])) if not math.isnan(last_value(line[1])) else 0)
    for index, (_name, points) in enumerate(lines):
        ax.plot([t - start for t, _ in points], [v for _, v in points], color=COLORS[index % len(COLORS)],
                linewidth=1.6, marker="." if len(points) < 3 else None)
    ax.set_ylim(bottom=0)
    legend_table(ax, lines, fmt, right=(width - 0.053) / (width * 0.56))


def note(ax, text):
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=DIM, fontsize=11)


def legend_table(ax, lines, fmt, right):
    """Grafana's legend "table on the right" with the last value; ``right``: the panel's edge in axes units."""
    ax.text(right, 1.0, "Last *", transform=ax.transAxes, color=DIM, fontsize=9, va="top", ha="right")
    for row, (name, points) in enumerate(lines[:LEGEND_ROWS]):
        y = 0.9 - row * 0.11
        ax.text(1.04, y, "\u2501", transform=ax.transAxes, color=COLORS[row % len(COLORS)], fontsize=10, va="top")
        shown = name if len(name) <= 34 else name[:33] + "\u2026"
        ax.text(1.09, y, shown, transform=ax.transAxes, color=TEXT, fontsize=9, va="top")
        ax.text(right, y, fmt(last_value(points)), transform=ax.transAxes, color=TEXT, fontsize=9, va="top",
                ha="right")
    if len(lines) > LEGEND_ROWS:
        ax.text(1.09, 0.9 - LEGEND_ROWS * 0.11, f"+ {len(lines) - LEGEND_ROWS} more series",
                transform=ax.transAxes, color=DIM, fontsize=9, va="top")


def render(dashboard, scrapes, meta, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    header, unit = 1.3, 0.34  # inches: the title block, one Grafana grid row
    fig = plt.figure(figsize=(22, header + rows * unit), dpi=90, facecolor=BACKGROUND)
    total = header + rows * unit
    start = scrapes.times[0]
    fig.text(0.01, 1 - 0.25 / total, dashboard.get("title", "Dashboard"), color=TEXT, fontsize=18, weight="bold",
             va="top")
    fig.text(0.01, 1 - 0.75 / total, subtitle(meta, scrapes), color=DIM, fontsize=10.5, va="top")
    for panel in panels:
        grid = panel["gridPos"]
        rect = (grid["x"] / 24 + 0.004, (rows - grid["y"] - grid["h"]) * unit / total + 0.003,
                grid["w"] / 24 - 0.008, grid["h"] * unit / total - 0.006)
        draw_panel(fig, panel, rect, scrapes, meta["rate_window"], start)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=BACKGROUND)
    plt.close(fig)


def subtitle(meta, scrapes):
    first, last = (datetime.fromtimestamp(t, UTC) for t in (scrapes.times[0], scrapes.times[-1]))
    traffic = ", ".join(f"{count} {status}" for status, count in sorted(meta.get("traffic", {}).items()))
    return (f"Rendered by scripts/render_dashboard.py from live scrapes of a running system (make run), "
            f"not a Grafana screenshot: docs/grafana/pos-dashboard.json evaluated on {len(scrapes.times)} scrapes "
            f"of {meta['processes']} processes every {meta['interval']:g} s, "
            f"{first:%Y-%m-%d %H:%M:%S}-{last:%H:%M:%S} UTC; \\$__rate_interval = {meta['rate_window']:g} s.\n"
            f"Traffic through the public API meanwhile: {traffic or 'none'} "
            f"(one customer searching, reading products, ordering with tok_visa / tok_chargeDeclined).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dashboard", default=str(ROOT / "docs/grafana/pos-dashboard.json"))
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--metrics-base-port", type=int, default=int(os.environ.get("METRICS_BASE_PORT", "9101")))
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of scraping")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between scrapes")
    parser.add_argument("--rate-window", type=float, default=30.0, help="$__rate_interval in seconds")
    parser.add_argument("--no-traffic", action="store_true", help="only scrape; the system gets its load elsewhere")
    parser.add_argument("--save-scrapes")
    parser.add_argument("--from-scrapes")
    parser.add_argument("--out", default=str(ROOT / "docs/images/dashboard.png"))
    args = parser.parse_args(argv)
    dashboard = json.loads(Path(args.dashboard).read_text())
    if args.from_scrapes:
        scrapes, meta = load_scrapes(args.from_scrapes)
        meta["rate_window"] = args.rate_window
    else:
        targets = scrape_targets(args.base_url.rstrip("/"), args.metrics_base_port)
        traffic = None if args.no_traffic else Traffic(args.base_url.rstrip("/"))
        scrapes, failures = collect(targets, args.duration, args.interval, traffic)
        if failures:
            print(f"failed scrapes by process: {dict(failures)}", file=sys.stderr)
        answered = {dict(labels)["instance"] for samples in scrapes.samples for _, labels in samples}
        meta = {"processes": len(answered), "interval": args.interval,
                "rate_window": args.rate_window, "traffic": dict(traffic.counts) if traffic else {}}
        if args.save_scrapes:
            save_scrapes(args.save_scrapes, scrapes, meta)
    render(dashboard, scrapes, meta, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
