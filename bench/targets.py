"""Issue 18's targets, each a ratio to a floor measured in the same run (this machine's speed drifts 20-30 %
between runs, and by half between days): ``hop`` is one `@http` request making one RPC, ``bare`` the bare `@http`.

Each target is ``Target(name, measured text, met: True/False/None)``; None: not measured in this run.
"""

from dataclasses import dataclass

from bench.report import floor_of, results_memory, total_errors

MEMORY_LIMIT_MB = 150
IDLE_LIMIT_MS_PER_S = 10


@dataclass
class Target:
    name: str
    measured: str
    met: object  # True, False or None (not measured)


def cpu_ms_per_order_by_process(results):
    """``{process: CPU ms}`` per order placed, over the settled orders phase; None when it was not counted."""
    orders, cost = results.orders, results.orders_cost
    if not cost or orders is None or orders.skipped or not orders.created:
        return None
    return {name: 1000 * seconds / orders.created for name, seconds in cost["cpu_seconds"].items()}


def idle_ms_per_s_by_process(results):
    """``{process: CPU ms per second}`` at rest; None when it was not measured."""
    if not results.idle:
        return None
    return {name: 1000 * used / results.idle["seconds"] for name, used in results.idle["cpu_seconds"].items()}


def light_p99(run):
    return run.p99 if run and run.requests else None


def order_targets(results, hop, hop_light):
    orders, by_process = results.orders, cpu_ms_per_order_by_process(results)
    rows = []
    measured = orders and not orders.skipped and orders.created
    hop_cpu = hop.cpu_ms_per_request() if hop else None
    if by_process is not None and hop_cpu:
        per_order = sum(by_process.values())
        rows.append(Target("whole-system CPU per order <= 15 x one hop's", f"{per_order:.1f} ms = "
                           f"{per_order / hop_cpu:.1f} hops (hop {hop_cpu:.2f} ms)", per_order <= 15 * hop_cpu))
    else:
        rows.append(Target("whole-system CPU per order <= 15 x one hop's", "not measured", None))
    if measured and orders.load and hop:
        rows.append(Target("orders/s >= hop req/s / 20 (full load)", f"{orders.load.rps:,.1f}/s vs "
                           f"{hop.rps / 20:,.1f}", orders.load.rps >= hop.rps / 20))
    light_hop = light_p99(hop_light)
    if measured and orders.light and light_hop:
        rows.append(Target("POST /orders p99 at light load <= 5 x hop light p99",
                           f"{orders.light.p99:.0f} ms vs {5 * light_hop:.0f}", orders.light.p99 <= 5 * light_hop))
        paid = orders.time_to_paid_ms.get("p99")
        rows.append(Target("time to PAID p99 <= 15 x hop light p99 (every order of the phase)",
                           f"{paid:.0f} ms vs {15 * light_hop:.0f}" if paid is not None else "no order paid",
                           paid is not None and paid <= 15 * light_hop))
    return rows


def search_targets(results, hop_light):
    light_hop, rows = light_p99(hop_light), []
    wanted = [(100_000, "text", 3), (1_000_000, "text", 5), (1_000_000, "filters", 3)]
    for size, mix, times in wanted:
        name = f"search {mix} p99 at light load <= {times} x hop light p99 at {size:,} products"
        point = next((p for p in results.search if p.products == size), None)
        run = next((r for r in (point.light if point else []) if f"({mix})" in r.name), None)
        if point and point.skipped:
            rows.append(Target(name, point.skipped, False))
        elif run is None or light_hop is None or not run.requests:
            rows.append(Target(name, "not measured at light load", None))
        else:
            rows.append(Target(name, f"{run.p99:.1f} ms vs {times * light_hop:.1f}", run.p99 <= times * light_hop))
    return rows


def targets(results):
    bare, hop, hop_light = floor_of(results, "bare"), floor_of(results, "hop"), results.floors.get("hop_light")
    rows = order_targets(results, hop, hop_light)
    idle_by_process = idle_ms_per_s_by_process(results)
    if idle_by_process is not None:
        idle = sum(idle_by_process.values())
        rows.append(Target(f"whole system at rest < {IDLE_LIMIT_MS_PER_S} ms CPU per second", f"{idle:.1f} ms/s",
                           idle < IDLE_LIMIT_MS_PER_S))
    else:
        rows.append(Target(f"whole system at rest < {IDLE_LIMIT_MS_PER_S} ms CPU per second", "not measured", None))
    rows += search_targets(results, hop_light)
    if results.read and bare:
        needed = 0.5 * bare.rps
        rows.append(Target("warm product read >= 0.5 x bare floor",
                           f"{results.read.rps:,.0f} req/s vs {needed:,.0f}", results.read.rps >= needed))
    if results.relay:
        rate = (results.relay_drain or results.relay).rate
        lag = results.relay.lag_ms.get("p99")
        rows.append(Target("relay >= 5,000 events/s, lag p99 < 1 s",
                           f"{rate:,.0f}/s, lag p99 {lag:,.0f} ms" if lag is not None else "no events",
                           rate >= 5000 and lag is not None and lag < 1000))
    errors = total_errors(results)
    rows.append(Target("no errors", f"{errors} errors", errors == 0))
    peak = max(results_memory(results).values(), default=0)
    rows.append(Target(f"each service process < {MEMORY_LIMIT_MB} MB RSS under load", f"largest {peak:.0f} MB",
                       0 < peak < MEMORY_LIMIT_MB))
    return rows


def verdict(target):
    return {True: "**met**", False: "**not met**", None: "-"}[target.met]


def table_rows(results):
    return [[t.name, t.measured, verdict(t)] for t in targets(results)]
