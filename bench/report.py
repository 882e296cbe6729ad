"""docs/benchmarks.md from one run's results: machine, versions, floors, scenarios, targets, memory, profiles."""

import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ANALYSIS = Path(__file__).parent / "analysis.md"


@dataclass
class Results:
    floors: dict = field(default_factory=dict)     # {"bare": [LoadResult], "hop": [LoadResult]}
    kafka_floor: object = None
    read: object = None
    search: list = field(default_factory=list)     # [SearchPoint]
    orders: object = None
    relay: object = None
    relay_drain: object = None
    relay_by_replicas: dict = None   # bridge replicas -> the drain's Throughput (with ``shards_held``)
    memory: dict = field(default_factory=dict)     # {phase: {process: MB}}
    cpu: dict = field(default_factory=dict)        # {phase: {process: CPU seconds}}
    notes: list = field(default_factory=list)
    started_processes: list = field(default_factory=list)
    idle: dict = None         # {"seconds", "cpu_seconds": {process: s}}: whole system at rest
    orders_cost: dict = None  # {"cpu_seconds": {process: s}, "sql": n, "amqp": n}: the orders phase, settled
    sql_by_service: dict = None  # {service: statements per order}: bench.statements' census after the orders phase
    tracing: dict = None      # {"sample", "exports", "bytes"} when BENCH_TRACE_SAMPLE was set


def machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"CPU": model, "cores": os.cpu_count(), "memory": f"{mem_kb / 2**20:.1f} GiB",
            "kernel": platform.release(), "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def package_version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def command_version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def versions(server_versions):
    found = {"python": platform.python_version()}
    for name in ("nameko", "eventlet", "kombu", "SQLAlchemy", "PyMySQL", "redis", "confluent-kafka", "grpcio"):
        found[name] = package_version(name)
    found.update(server_versions)
    found["wrk"] = command_version(["wrk", "--version"]).split(" [")[0] or "unknown"
    return found


def row(*cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(headers, rows):
    return "\n".join([row(*headers), row(*["---"] * len(headers)), *(row(*r) for r in rows)])


def ratio(value, floor):
    return f"{value / floor:.2f}" if floor else "-"


def load_row(result, floor=None):
    if result.requests == 0:
        return [result.name, "0", "no request completed within the run", "", "", result.errors,
                f"{result.load_average:.1f}", "-"]
    errors = f"{result.errors}" + (f" ({', '.join(f'{k} {v}' for k, v in result.error_kinds.items())})"
                                   if result.errors else "")
    return [result.name, f"{result.rps:,.0f}", f"{result.p50:.1f}", f"{result.p95:.1f}", f"{result.p99:.1f}",
            errors, f"{result.load_average:.1f}", ratio(result.rps, floor.rps) if floor else "-"]


LOAD_HEADERS = ["run", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "load avg", "ratio to floor"]


def floor_of(results, kind):
    runs = results.floors.get(kind) or []
    return runs[0] if runs else None


def search_target_size(results):
    return getattr(results, "target_size", 100_000)


def total_errors(results):
    loads = [results.read] + [r for p in results.search for r in p.results + p.light]
    loads += [results.orders.load, results.orders.light] if results.orders else []
    errors = sum(load.errors for load in loads if load)
    return errors + sum(relay.errors for relay in (results.relay, results.relay_drain) if relay)


def results_memory(results):
    peaks = {}
    for phase, processes in results.memory.items():
        if phase.startswith("floor"):
            continue
        for name, rss in processes.items():
            peaks[name] = max(peaks.get(name, 0.0), rss)
    return peaks


def render(results, settings, server_versions, started_at, finished_at):
    from bench.targets import table_rows  # it judges with this module's helpers

    bare, hop = floor_of(results, "bare"), floor_of(results, "hop")
    parts = [
        "# Benchmarks",
        f"Written by `make bench` (bench/run.py) on {started_at:%Y-%m-%d %H:%M} UTC in "
        f"{(finished_at - started_at).total_seconds() / 60:.1f} minutes. Load: `wrk -t{settings.threads} "
        f"-c{settings.connections} -d{settings.duration:g}s` after a {settings.warmup:g} s warm-up, from a second "
        "process on loopback. **wrk shares the machine's cores with every service, RabbitMQ, MariaDB, Redis and "
        "tansu**, so every figure here is for the whole system on one small box, and other work on the machine "
        "shows up in them: `load avg` is the machine's 1-minute load average as each run ended (2 cores: above 2 "
        "means runs waited for a CPU). Latencies in milliseconds.",
        "## Machine", table(["", ""], machine().items()),
        "## Versions", table(["component", "version"], versions(server_versions).items()),
        "## Targets (issue 18: ratios to the floors of this run)",
        table(["target", "measured", ""], table_rows(results)),
    ]
    parts += floors_section(results)
    parts += scenarios_section(results, bare, hop)
    parts += search_section(results)
    parts += orders_section(results)
    parts += kafka_section(results)
    parts += memory_section(results)
    parts += cpu_section(results)
    parts += whole_system_section(results)
    parts += profiles_section(results)
    if results.notes:
        parts += ["## Notes from this run", "\n".join(f"- {note}" for note in results.notes)]
    if ANALYSIS.exists():
        parts.append(ANALYSIS.read_text().strip())
    parts += ["## Running it", KNOBS]
    return "\n\n".join(parts) + "\n"


def floors_section(results):
    runs = [load_row(r, floor_of(results, kind)) for kind in ("bare", "hop") for r in results.floors.get(kind, [])]
    if not runs:
        return []
    if results.floors.get("hop_light"):
        runs.append(load_row(results.floors["hop_light"]))
    return ["## Floors: what Nameko itself costs",
            "`bare`: a Nameko `@http` handler returning constant JSON. `hop`: an `@http` handler making one RPC to "
            "a service that returns a constant (bench/floor_services.py). The first row of each is the floor; the "
            "others are the experiments that try to make the hop cheaper (ratio to the first row of its kind). "
            "The light-load row is the hop floor with few connections: the latency of one hop when requests "
            "rarely wait for each other (the floor of the light-load rows below).",
            table(LOAD_HEADERS, runs)]


def scenarios_section(results, bare, hop):
    rows = []
    if results.read:
        rows.append(load_row(results.read, bare) + ["bare"])
    hop_light = results.floors.get("hop_light")
    for point in results.search:
        if point.products == search_target_size(results):
            rows += [load_row(r, hop) + ["hop"] for r in point.results]
            rows += [load_row(r, hop_light) + ["hop, light load"] for r in point.light]
    if results.orders and results.orders.load:
        rows.append(load_row(results.orders.load, hop) + ["hop"])
    if results.orders and results.orders.light:
        rows.append(load_row(results.orders.light, hop_light) + ["hop, light load"])
    if not rows:
        return []
    return ["## Scenarios", table(LOAD_HEADERS + ["floor"], rows)]


def search_section(results):
    if not results.search:
        return []
    rows = []
    for point in results.search:
        if point.skipped:
            rows.append([f"{point.products:,}", "-", point.skipped, "", "", "", ""])
        for r in point.results:
            if r.requests == 0:
                rows.append([f"{point.products:,}", f"{point.seed_seconds:.0f}", r.name.split("(")[1].split(")")[0],
                             "0", "none completed within the run", "", f"{r.load_average:.1f}"])
                continue
            rows.append([f"{point.products:,}", f"{point.seed_seconds:.0f}", r.name.split("(")[1].split(")")[0],
                         f"{r.rps:,.0f}", f"{r.p50:.1f}", f"{r.p99:.1f}", f"{r.load_average:.1f}"])
    return ["## Search latency as the catalogue grows",
            "`filters`: `category_id`, a 50-wide price window, `in_stock=true`, `sort=price` (served by the "
            "`(category_id, price)` index). `text`: `q=<word>` (a word-prefix match on name, description, sku: "
            "MariaDB FULLTEXT), `in_stock=true`, `sort=-price`, pages 1-3. Seed seconds: bulk insert of the "
            "products added for that size (bench/seed.py).",
            table(["products", "seed s", "mix", "req/s", "p50 ms", "p99 ms", "load avg"], rows)]


def orders_section(results):
    orders = results.orders
    if orders is None:
        return []
    if orders.skipped:
        return ["## Orders end to end", f"Not measured: {orders.skipped}."]
    ttp = orders.time_to_paid_ms
    return ["## Orders end to end",
            f"{orders.created:,} orders created under load, {orders.paid:,} reached `PAID`. Time to PAID, from "
            "`order.created` to `order.paid` as both reach an AMQP queue of the bench (payment saga: payments "
            "service -> gRPC provider -> orders): " + (", ".join(f"{k} {v:,.0f} ms" for k, v in ttp.items())
                                                        if ttp else "no order reached PAID") + "."]


def kafka_section(results):
    rows = []
    floor = results.kafka_floor
    if floor:
        rows.append([floor.name, f"{floor.messages:,}", f"{floor.rate:,.0f}", "-", floor.errors, "-"])
    relay = results.relay
    for run in (relay, results.relay_drain):
        if run:
            lag = ", ".join(f"{k} {v:,.0f}" for k, v in run.lag_ms.items()) or "-"
            rows.append([run.name, f"{run.messages:,}", f"{run.rate:,.0f}", lag, run.errors,
                         ratio(run.rate, floor.rate) if floor else "-"])
    if not rows:
        return []
    text = [
        "## Kafka",
        table(["run", "messages", "per second", "lag ms", "errors", "ratio to floor"], rows)]
    text += replicas_table(results)
    if relay:
        text.append(f"The bench published to `notifications.events` at {relay.publish_rate:,.0f} events/s "
                    "(plain py-amqp, no confirms). Lag: from the envelope's creation in the bench to its arrival "
                    "at a Kafka consumer of the bench." + (f" Note: {relay.note}." if relay.note else "")
                    + (f" Drain: {results.relay_drain.note}; no lag is measured there (events wait while "
                       "paused)." if results.relay_drain else ""))
    return text


def replicas_table(results):
    runs = results.relay_by_replicas or {}
    if not runs:
        return []
    one = runs.get(1)
    rows = [[count, f"{run.messages:,}", f"{run.rate:,.0f}", ratio(run.rate, one.rate) if one else "-", run.errors,
             " / ".join("?" if held is None else str(held) for held in run.shards_held)]
            for count, run in sorted(runs.items())]
    return ["### Relay by bridge replicas",
            table(["replicas", "events", "drained per second", "ratio to 1 replica", "errors",
                   "shards held by each"], rows),
            "Each count drains the same pre-loaded queue (the bridges paused with SIGSTOP while it fills), after a "
            "warm-up drain that lets the replicas share the shards out. The replicas share this machine's cores "
            "with RabbitMQ, the Kafka broker and the publishers, so the figure is the sharing's overhead or gain "
            "on one machine, not a cluster's scaling."]


def memory_section(results):
    if not results.memory:
        return []
    phases = [phase for phase in results.memory if not phase.startswith("floor")]
    names = sorted({name for phase in phases for name in results.memory[phase]})
    rows = [[name, *(f"{results.memory[phase].get(name, 0):.0f}" for phase in phases)] for name in names]
    return ["## Memory: peak RSS (MB) of each process, per phase (psutil, sampled every 0.5 s)",
            table(["process", *phases], rows)]


def cpu_section(results):
    """Where the machine's CPU went in each phase: the services' own share, and per order for the orders phase."""
    phases = [phase for phase, used in results.cpu.items() if sum(used.values()) > 0.5]
    if not phases:
        return []
    names = sorted({name for phase in phases for name in results.cpu[phase]},
                   key=lambda name: -sum(results.cpu[phase].get(name, 0) for phase in phases))
    rows = [[name, *(f"{results.cpu[phase].get(name, 0):.1f}" for phase in phases)] for name in names]
    rows.append(["**all services**", *(f"{sum(results.cpu[phase].values()):.1f}" for phase in phases)])
    text = ["## CPU: seconds each service process used, per phase (psutil user+system; RabbitMQ, MariaDB, Redis, "
            "tansu and wrk not included)", table(["process", *phases], rows)]
    orders = results.orders
    if orders and not orders.skipped and orders.created and "orders" in results.cpu:
        used = results.cpu["orders"]
        per_order = ", ".join(f"{name} {1000 * seconds / orders.created:.1f}"
                              for name, seconds in sorted(used.items(), key=lambda item: -item[1]) if seconds > 0.05)
        text.append(f"Per order placed (CPU ms, {orders.created:,} orders, the saga of each included): "
                    f"**{1000 * sum(used.values()) / orders.created:.1f} ms in all**: {per_order}.")
    return text


def whole_system_section(results):
    """Issue 18's figures: CPU of every process (the servers too) per hop floor request, per order, at rest."""
    from bench.results_json import floors, idle_cpu_ms_per_s, per_order

    rows = [[f"{kind} floor, per request", f"{figures['cpu_ms_per_request']:.2f}"]
            for kind, figures in floors(results).items() if figures and figures["cpu_ms_per_request"] is not None]
    orders = per_order(results, floor_of(results, "hop"))
    if orders and orders["cpu_ms_per_order"] is not None:
        by_process = ", ".join(f"{name} {ms:.1f}" for name, ms in orders["cpu_ms_per_order_by_process"].items())
        rows.append(["per order (settled)", f"{orders['cpu_ms_per_order']:.1f} ({by_process})"])
        rows.append(["hops per order (per order / hop floor)", orders["hops_per_order"] or "-"])
        rows.append(["SQL statements / AMQP messages published / RPC calls served per order",
                     f"{orders['sql_per_order']} / {orders['amqp_per_order']} / {orders['rpc_per_order']}"])
    if results.sql_by_service:
        from bench.statements import CENSUS_ORDERS

        rows.append([f"SQL statements per order by service (census of {CENSUS_ORDERS} orders placed one at a time, "
                     "at-rest rate taken out)",
                     ", ".join(f"{service} {n}" for service, n in results.sql_by_service.items())])
    idle, by_process = idle_cpu_ms_per_s(results)
    if idle is not None:
        rows.append(["at rest, per second", f"{idle:.1f} ({', '.join(f'{k} {v:.1f}' for k, v in by_process.items())})"])
    if not rows:
        return []
    return ["## Whole-system CPU (ms): every process, RabbitMQ, MariaDB, Redis and tansu included",
            "Counted with psutil over the measured runs (orders: until the work that follows them settled). The "
            "servers are shared with the machine: these are this system's figures only on a quiet machine. SQL "
            "statements: MariaDB's `Questions`; AMQP: messages published in the bench's vhost.",
            table(["what", "CPU ms"], rows)]


def profiles_section(results):
    loads = [r for kind in ("hop",) for r in results.floors.get(kind, [])[:1]]
    loads += [results.read] + [r for p in results.search for r in p.results]
    loads += [results.orders.load] if results.orders and results.orders.load else []
    loads += [results.relay] if results.relay else []
    parts = []
    for load in loads:
        for profile in getattr(load, "profiles", None) or []:
            if profile.error:
                parts.append(f"### {profile.process} during {load.name}\npy-spy failed: {profile.error}")
                continue
            categories = ", ".join(f"{name} {share:.0f}%" for name, share in list(profile.by_category.items())[:9])
            hottest = table(["function (self time)", "% of samples"],
                            [(name, f"{share:.1f}") for name, share in profile.top_self])
            parts.append(f"### {profile.process} during {load.name}\n{profile.samples:,} busy samples at 100 Hz "
                         f"(plus {profile.idle:,} in the hub's epoll wait, left out). Share of busy samples in "
                         f"each library (innermost library frame): {categories}.\n\n{hottest}")
    if not parts:
        return []
    return ["## Profiles (py-spy while wrk ran)", *parts]


KNOBS = """`make bench` (or `.venv/bin/python -m bench.run`). It starts RabbitMQ, MariaDB and Redis if they are down,
installs `wrk` with apt-get if it is missing, creates the RabbitMQ vhost `pos_bench`, the MariaDB databases
`pos_bench_<service>` and a tansu broker of its own, runs everything with `config/bench.yml`, writes this file and
its machine-readable twin (`docs/benchmarks.json`, beside `BENCH_OUTPUT`) and removes what it created. Logs:
`var/bench/log/`. Settings (environment):

| variable | default | what |
|---|---|---|
| `BENCH_DURATION` | 10 | seconds of each measured wrk run |
| `BENCH_WARMUP` | 2 | seconds of the discarded run before each |
| `BENCH_CONNECTIONS` / `BENCH_THREADS` | 32 / 2 | wrk `-c` / `-t` |
| `BENCH_LIGHT_CONNECTIONS` | 4 | wrk `-c` of the light-load (latency) runs; 0: none |
| `BENCH_PRODUCTS` | 100000 | the catalogue size the search target is about |
| `BENCH_SEARCH_SIZES` | 10000,100000,1000000 | sizes search is measured at |
| `BENCH_MAX_SEED_SECONDS` | 240 | skip a size whose seeding is projected to take longer |
| `BENCH_TRACE_SAMPLE` | (off) | a ratio: every process traces that share of requests to a sink of the bench's |
| `BENCH_IDLE_SECONDS` | 20 | seconds the whole system's CPU is counted at rest (0: not measured) |
| `BENCH_EVENTS` / `BENCH_KAFKA_MESSAGES` | 20000 / 50000 | relay events / raw produce messages |
| `BENCH_RELAY_RATE` / `BENCH_RELAY_PUBLISHERS` | 5000 / 3 | relay publish rate (events/s) / publisher processes |
| `BENCH_SCENARIOS` | floors,kafka,read,search,orders,relay | which parts run |
| `BENCH_EXPERIMENTS` / `BENCH_PROFILE` | 1 / 1 | the RPC-hop experiments / py-spy profiles |
| `BENCH_OUTPUT` | docs/benchmarks.md | where this report goes |
| `BENCH_NAME` / `BENCH_REDIS_DB` | pos_bench / 1 | vhost, database prefix and `var/` folder / Redis db |
| `BENCH_GATEWAY_PORT` / `BENCH_FLOOR_PORT` | 8100 / 8110 | ports (a second bench at once needs its own) |
| `BENCH_METRICS_PORT` | 9201 | the first of the processes' metrics ports (they count up from it) |"""
