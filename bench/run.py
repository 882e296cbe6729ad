"""`make bench`: floors, then the system as `make run` starts it (on MariaDB and Redis) under wrk; writes
docs/benchmarks.md. Settings come from the environment (bench/settings.py; the table at the end of the report).
"""

import os
import sys
import time
import warnings
from datetime import UTC, datetime

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")

from bench import infra, kafka, profiling, report, results_json, scenarios  # noqa: E402
from bench.floors import run_floors  # noqa: E402
from bench.otlp_sink import OtlpSink  # noqa: E402
from bench.processes import MemorySampler, wait_until_quiet  # noqa: E402
from bench.seed import Catalogue  # noqa: E402
from bench.settings import Settings  # noqa: E402
from bench.statements import census_of_orders  # noqa: E402
from bench.system import migrate, rebuild_search_index, start_system  # noqa: E402
from bench.whole_system import Counters, CpuWindow, metrics_text, server_pids  # noqa: E402
from scripts.processes import ROOT  # noqa: E402
from scripts.run_system import NAMEKO_PROCESSES  # noqa: E402

ORDER_PROCESSES = ("gateway", "orders", "inventory", "products", "notifications")  # profiled while orders run
KAFKA_BRIDGE_INDEX = [name for name, _service in NAMEKO_PROCESSES].index("kafka_bridge")  # its METRICS_PORT
ORDER_PRODUCTS = 50  # ids 1..50, stocked for every order the run can place


def say(message):
    print(f"[bench] {message}", flush=True)


def main():
    settings = Settings()
    started_at = datetime.now(UTC)
    infra.ensure_services(ROOT)
    wrk = infra.ensure_wrk()
    for port in (settings.gateway_port, settings.floor_port):
        if infra.port_answers("127.0.0.1", port):
            sys.exit(f"bench: something already listens on 127.0.0.1:{port} "
                     "(BENCH_GATEWAY_PORT / BENCH_FLOOR_PORT choose others)")
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    results = report.Results()
    results.target_size = settings.products
    redis_uri = f"redis://127.0.0.1:6379/{settings.redis_db}"
    vhost, databases = infra.Vhost(settings.name).create(), infra.Databases(settings.name).create()
    infra.flush_redis(redis_uri)
    broker = infra.Kafka(settings.work_dir / "log" / "tansu.log")
    env = bench_env(settings, vhost, databases, broker, redis_uri)
    servers = server_pids(broker.process.pid)
    sink = trace_to_sink(settings, env, results)
    try:
        if settings.wants("floors"):
            say("floors: bare @http, @http + one RPC, and the RPC-hop experiments")
            results.floors = run_floors(settings, env, wrk, settings.work_dir / "log", servers)
        if settings.wants("kafka"):
            say(f"raw confluent-kafka produce of {settings.kafka_messages:,} messages")
            results.kafka_floor = kafka.produce_floor(broker.bootstrap, settings.kafka_messages)
        if any(settings.wants(name) for name in ("read", "search", "orders", "relay")):
            run_system_scenarios(settings, env, wrk, databases, broker, results, servers, vhost.name)
        server_versions = infra.server_versions(redis_uri)
    finally:
        say("cleaning up")
        if sink is not None:
            sink.stop()
            results.tracing.update(exports=sink.exports, bytes=sink.bytes)
        broker.stop()
        vhost.delete()
        databases.drop()
        infra.flush_redis(redis_uri)
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    finished_at = datetime.now(UTC)
    settings.output.write_text(report.render(results, settings, server_versions, started_at, finished_at))
    json_output = settings.output.with_suffix(".json")
    json_output.write_text(results_json.render(results, settings, server_versions, started_at, finished_at))
    say(f"wrote {settings.output} and {json_output}")
    return 0


def bench_env(settings, vhost, databases, broker, redis_uri):
    address = f"127.0.0.1:{settings.gateway_port}"
    return {**os.environ, **databases.env(), "PYTHONWARNINGS": "ignore", "POS_CONFIG": str(settings.config),
            "AMQP_URI": vhost.amqp_uri, "REDIS_URI": redis_uri, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "PAYMENT_PROVIDER_ADDRESS": f"127.0.0.1:{infra.free_port()}", "GATEWAY_ADDRESS": address,
            "PUBLIC_BASE_URL": f"http://{address}", "PYTHONPATH": pythonpath()}


def pythonpath():
    """This checkout first: every process the bench starts imports the code being measured, not another checkout
    that the venv happens to have installed (a worktree's bench on main's venv measured main's code)."""
    rest = [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part and part != str(ROOT)]
    return os.pathsep.join([str(ROOT), *rest])


def trace_to_sink(settings, env, results):
    """With ``BENCH_TRACE_SAMPLE`` set, every process exports its traces (that share of them) to a sink of the
    bench's own: what tracing costs, measured like everything else."""
    if settings.trace_sample is None:
        return None
    sink = OtlpSink()
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_TRACES_SAMPLER="parentbased_traceidratio",
               OTEL_TRACES_SAMPLER_ARG=str(settings.trace_sample))
    results.tracing = {"sample": settings.trace_sample}
    results.notes.append(f"tracing on: {settings.trace_sample:.0%} of traces sampled, exported over OTLP/HTTP to a "
                         "sink of the bench's (bench/otlp_sink.py)")
    return sink


def run_system_scenarios(settings, env, wrk, databases, broker, results, servers, vhost_name):
    say("migrating the pos_bench_* databases and starting the system (config/bench.yml)")
    migrate(settings, env)
    fleet, results.started_processes = start_system(settings, env, env["PAYMENT_PROVIDER_ADDRESS"])
    sampler = MemorySampler(fleet.pids()).start()
    catalogue = Catalogue(databases.uri("products"), databases.uri("inventory"))
    base_url = f"http://127.0.0.1:{settings.gateway_port}"
    pids = fleet.pids()

    def profile(*names):
        return {name: pids[name] for name in names if name in pids} if settings.profile else None

    everything = {**servers, **pids}

    def reindex():
        return rebuild_search_index(env)

    metrics_ports = [settings.metrics_port + index for index, (name, _) in enumerate(NAMEKO_PROCESSES)
                     if name in results.started_processes]
    try:
        if settings.idle_seconds > 0:
            say(f"at rest: {settings.idle_seconds:g} s with no traffic")
            results.idle = at_rest(settings, everything)
        catalogue.grow_to(ORDER_PRODUCTS, on_hand=10_000_000)
        sizes = sorted(settings.search_sizes) if settings.wants("search") else []
        small, large = [s for s in sizes if s <= settings.products], [s for s in sizes if s > settings.products]
        if small:
            sampler.switch("search")
            results.search += scenarios.search_at_sizes(settings, catalogue, base_url, wrk, small,
                                                        profile("gateway", "products"), say, reindex)
        if settings.wants("read"):
            sampler.switch("read")
            catalogue.grow_to(ORDER_PRODUCTS + settings.warm_products)
            ids = range(ORDER_PRODUCTS + 1, ORDER_PRODUCTS + settings.warm_products + 1)
            say("GET /products/{id}, cache warm")
            results.read = scenarios.warm_read(settings, base_url, ids, wrk, profile("gateway", "products"))
        if settings.wants("orders"):
            sampler.switch("orders")
            say("POST /orders to PAID")
            window, counters = CpuWindow(everything).start(), Counters(vhost_name, metrics_ports).start()
            results.orders = scenarios.place_orders(settings, base_url, list(range(1, ORDER_PRODUCTS + 1)), wrk,
                                                    env["AMQP_URI"], profile(*ORDER_PROCESSES), log=say)
            wait_until_quiet()  # the emails, invoices and relays that follow the last order
            time.sleep(6)  # RabbitMQ's message statistics are collected every 5 s
            results.orders_cost = {"cpu_seconds": window.stop(), **counters.delta()}
            say("orders: a census of their SQL statements by service (the general query log)")
            results.sql_by_service = census_of_orders(base_url, list(range(1, ORDER_PRODUCTS + 1)), env["AMQP_URI"],
                                                      databases.names)
        if settings.wants("relay"):
            sampler.switch("relay")
            say(f"relay of {settings.relay_events:,} events AMQP -> Kafka")
            results.relay = relay(settings, env, broker, profile("kafka_bridge"))
            say(f"drain of {settings.relay_events:,} events queued while the bridge was paused")
            results.relay_drain = kafka.drain(env["AMQP_URI"], broker.bootstrap, settings.relay_events, "pos.",
                                              pids["kafka_bridge"], settings.relay_publishers)
            results.relay_by_replicas = relay_by_replicas(settings, env, broker, fleet, sampler)
        if large:
            sampler.switch("search (large)")
            results.search += scenarios.search_at_sizes(settings, catalogue, base_url, wrk, large, log=say,
                                                        reindex=reindex)
    finally:
        sampler.stop()
        results.memory = sampler.peaks
        results.cpu = sampler.cpu_seconds()
        catalogue.close()
        failed = fleet.check()
        if failed:
            results.notes.append(f"{failed[0]} exited (code {failed[1]}) during the run: see var/bench/log/")
        fleet.stop()


def at_rest(settings, pids):
    """Whole-system CPU with no traffic, once the machine has settled after start-up."""
    wait_until_quiet()
    window = CpuWindow(pids).start()
    time.sleep(settings.idle_seconds)
    return {"seconds": settings.idle_seconds, "cpu_seconds": window.stop()}


def relay_by_replicas(settings, env, broker, fleet, sampler):
    """The same drain with 1, 2, 3... bridge replicas (``BENCH_RELAY_REPLICAS``), each count after a warm-up drain
    that lets the replicas share the shards out (a handover happens on a shard's first delivery)."""
    runs = {}
    replicas = [("kafka_bridge", fleet.pids()["kafka_bridge"], settings.metrics_port + KAFKA_BRIDGE_INDEX)]
    for count in sorted(settings.relay_replicas):
        while len(replicas) < count:
            name, port = f"kafka_bridge_{len(replicas) + 1}", settings.metrics_port + 100 + len(replicas)
            fleet.nameko(name, "bridge.kafka_relay:KafkaBridge", settings.config, {"METRICS_PORT": str(port)})
            replicas.append((name, fleet.pids()[name], port))
            sampler.watch(name, fleet.pids()[name])
        pids = [pid for _name, pid, _port in replicas[:count]]
        say(f"drain of {settings.relay_events:,} events with {count} bridge replica(s)")
        kafka.drain(env["AMQP_URI"], broker.bootstrap, max(2000, settings.relay_events // 10), "pos.", pids,
                    settings.relay_publishers)
        run = kafka.drain(env["AMQP_URI"], broker.bootstrap, settings.relay_events, "pos.", pids,
                          settings.relay_publishers)
        run.shards_held = [shards_held(port) for _name, _pid, port in replicas[:count]]
        runs[count] = run
    return runs


def shards_held(metrics_port):
    text = metrics_text(metrics_port, attempts=1)
    if text is None:
        return None
    return next((int(float(line.split()[-1])) for line in text.splitlines()
                 if line.startswith("pos_kafka_bridge_shards_held ")), None)


def relay(settings, env, broker, profile):
    # the publishers start after their imports and a warm-up (2-5 s after the profiler)
    seconds = settings.relay_events / settings.relay_rate + 5
    recorders = [(name, out, profiling.start(pid, seconds, out)) for name, pid in (profile or {}).items()
                 for out in [settings.work_dir / f"profile-{name}-relay.txt"]]
    result = kafka.relay(env["AMQP_URI"], broker.bootstrap, settings.relay_events, "pos.", settings.relay_rate,
                         settings.relay_publishers)
    result.profiles = [profiling.finish(name, recorder, out) for name, out, recorder in recorders]
    return result


if __name__ == "__main__":
    sys.exit(main())
