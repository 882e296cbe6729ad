"""docs/benchmarks.json: the figures of docs/benchmarks.md for machines (issue 18's layout), ``null`` where a figure
was not measured. CPU is whole-system: the system's processes and the servers it uses (bench/whole_system.py)."""

import json

from bench.report import floor_of, machine, versions
from bench.targets import cpu_ms_per_order_by_process, idle_ms_per_s_by_process, targets


def rounded(value, places=2):
    return None if value is None else round(value, places)


def load_figures(result, light=None):
    if result is None or not result.requests:
        return None
    figures = {"req_per_s": rounded(result.rps, 1), "p50_ms": rounded(result.p50), "p99_ms": rounded(result.p99),
               "cpu_ms_per_request": rounded(result.cpu_ms_per_request(), 3), "errors": result.errors}
    figures["light_p99_ms"] = rounded(light.p99) if light and light.requests else None
    return figures


def floors(results):
    bare, hop = floor_of(results, "bare"), floor_of(results, "hop")
    return {"bare": load_figures(bare), "hop": load_figures(hop, results.floors.get("hop_light"))}


def per_order(results, hop):
    orders, cost, by_process = results.orders, results.orders_cost, cpu_ms_per_order_by_process(results)
    if orders is None or orders.skipped or not orders.created:
        return None
    load, light = orders.load, orders.light
    figures = {"orders_created": orders.created, "orders_paid": orders.paid,
               "orders_per_s": rounded(load.rps, 1) if load else None,
               "p50_ms": rounded(load.p50) if load else None, "p99_ms": rounded(load.p99) if load else None,
               "light_p99_ms": rounded(light.p99) if light else None,
               "time_to_paid_p99_ms": rounded(orders.time_to_paid_ms.get("p99")),
               "cpu_ms_per_order": None, "cpu_ms_per_order_by_process": None, "hops_per_order": None,
               "sql_per_order": None, "amqp_per_order": None, "rpc_per_order": None,
               "sql_per_order_by_service": results.sql_by_service}
    if by_process is not None:
        total = sum(by_process.values())
        figures["cpu_ms_per_order"] = rounded(total)
        figures["cpu_ms_per_order_by_process"] = {name: rounded(ms) for name, ms in
                                                  sorted(by_process.items(), key=lambda item: -item[1])}
        hop_cpu = hop.cpu_ms_per_request() if hop else None
        figures["hops_per_order"] = rounded(total / hop_cpu, 1) if hop_cpu else None
        for key in ("sql", "amqp", "rpc"):
            if cost.get(key) is not None:
                figures[f"{key}_per_order"] = rounded(cost[key] / orders.created, 1)
    return figures


def search(results):
    sizes = {}
    for point in results.search:
        if point.skipped:
            sizes[str(point.products)] = {"skipped": point.skipped}
            continue
        mixes = {}
        for result in point.results:
            mix = result.name.split("(")[1].split(")")[0]
            light = next((r for r in point.light if f"({mix})" in r.name), None)
            figures = load_figures(result, light)
            mixes[mix] = figures and {key: figures[key] for key in ("req_per_s", "p99_ms", "light_p99_ms", "errors")}
        sizes[str(point.products)] = mixes
    return sizes


def read(results):
    bare = floor_of(results, "bare")
    if not results.read or not results.read.requests:
        return None
    return {"req_per_s": rounded(results.read.rps, 1),
            "ratio_to_bare": rounded(results.read.rps / bare.rps, 3) if bare and bare.rps else None}


def relay(results):
    run = results.relay
    if not run:
        return None
    capacity = results.relay_drain or run
    by_replicas = {str(count): {"events_per_s": rounded(drain.rate, 1), "shards_held": drain.shards_held}
                   for count, drain in sorted((results.relay_by_replicas or {}).items())}
    return {"events_per_s": rounded(capacity.rate, 1), "lag_p99_ms": rounded(run.lag_ms.get("p99")),
            "by_replicas": by_replicas or None}


def idle_cpu_ms_per_s(results):
    by_process = idle_ms_per_s_by_process(results)
    if by_process is None:
        return None, None
    return rounded(sum(by_process.values())), {name: rounded(ms) for name, ms in by_process.items()}


def as_dict(results, settings, server_versions, started_at, finished_at):
    idle, idle_by_process = idle_cpu_ms_per_s(results)
    return {
        "generated_at": finished_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started_at": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(), "versions": versions(server_versions),
        "config": settings.config.name,
        "load": {"threads": settings.threads, "connections": settings.connections,
                 "light_connections": settings.light_connections, "seconds": settings.duration},
        "floors": floors(results),
        "orders": per_order(results, floor_of(results, "hop")),
        "search": search(results),
        "read": read(results),
        "relay": relay(results),
        "idle_cpu_ms_per_s": idle,
        "idle_cpu_ms_per_s_by_process": idle_by_process,
        "tracing": results.tracing,
        "targets": [{"target": t.name, "measured": t.measured, "met": t.met} for t in targets(results)],
        "notes": results.notes,
    }


def render(results, settings, server_versions, started_at, finished_at):
    return json.dumps(as_dict(results, settings, server_versions, started_at, finished_at), indent=2) + "\n"
