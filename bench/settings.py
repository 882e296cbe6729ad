"""Everything a bench run can be told, from the environment (``make bench BENCH_DURATION=5`` ...)."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import Load

ROOT = Path(__file__).resolve().parent.parent


def _int(name, default):
    return int(os.environ.get(name, default))


def _float(name, default):
    return float(os.environ.get(name, default))


def _sizes(name, default):
    return [int(part) for part in os.environ.get(name, default).split(",") if part.strip()]


@dataclass
class Settings:
    duration: float = field(default_factory=lambda: _float("BENCH_DURATION", 10))
    warmup: float = field(default_factory=lambda: _float("BENCH_WARMUP", 2))
    threads: int = field(default_factory=lambda: _int("BENCH_THREADS", 2))
    connections: int = field(default_factory=lambda: _int("BENCH_CONNECTIONS", 32))
    # the latency runs: few enough connections that requests rarely queue behind each other (0: none)
    light_connections: int = field(default_factory=lambda: _int("BENCH_LIGHT_CONNECTIONS", 4))
    # search is measured at each catalogue size; BENCH_PRODUCTS is the one the target is about
    products: int = field(default_factory=lambda: _int("BENCH_PRODUCTS", 100_000))
    search_sizes: list = field(default_factory=lambda: _sizes("BENCH_SEARCH_SIZES", "10000,100000,1000000"))
    # a size whose seeding is projected to take longer than this is skipped, with a note
    max_seed_seconds: float = field(default_factory=lambda: _float("BENCH_MAX_SEED_SECONDS", 240))
    warm_products: int = field(default_factory=lambda: _int("BENCH_WARM_PRODUCTS", 1000))
    relay_events: int = field(default_factory=lambda: _int("BENCH_EVENTS", 20_000))
    relay_rate: int = field(default_factory=lambda: _int("BENCH_RELAY_RATE", 5000))
    relay_publishers: int = field(default_factory=lambda: _int("BENCH_RELAY_PUBLISHERS", 3))
    # the drain is measured with each of these numbers of bridge replicas sharing the shards
    relay_replicas: tuple = field(default_factory=lambda: tuple(
        int(n) for n in os.environ.get("BENCH_RELAY_REPLICAS", "1,2,3").split(",") if n.strip()))
    kafka_messages: int = field(default_factory=lambda: _int("BENCH_KAFKA_MESSAGES", 50_000))
    idle_seconds: float = field(default_factory=lambda: _float("BENCH_IDLE_SECONDS", 20))
    # None: tracing off (no endpoint); a ratio: every process samples that share of traces to the bench's sink
    trace_sample: float = field(default_factory=lambda: float(os.environ["BENCH_TRACE_SAMPLE"])
                                if os.environ.get("BENCH_TRACE_SAMPLE") else None)
    floor_experiments: bool = field(default_factory=lambda: os.environ.get("BENCH_EXPERIMENTS", "1") == "1")
    profile: bool = field(default_factory=lambda: os.environ.get("BENCH_PROFILE", "1") == "1")
    # names the vhost and databases, and the Redis db: two benches with different names can run side by side
    name: str = field(default_factory=lambda: os.environ.get("BENCH_NAME", "pos_bench"))
    redis_db: int = field(default_factory=lambda: _int("BENCH_REDIS_DB", 1))
    gateway_port: int = field(default_factory=lambda: _int("BENCH_GATEWAY_PORT", 8100))
    floor_port: int = field(default_factory=lambda: _int("BENCH_FLOOR_PORT", 8110))
    # the first of the processes' metrics ports (not make run's 9101..)
    metrics_port: int = field(default_factory=lambda: _int("BENCH_METRICS_PORT", 9201))
    scenarios: list = field(default_factory=lambda: os.environ.get(
        "BENCH_SCENARIOS", "floors,kafka,read,search,orders,relay").split(","))
    output: Path = field(default_factory=lambda: ROOT / os.environ.get("BENCH_OUTPUT", "docs/benchmarks.md"))
    config: Path = field(default_factory=lambda: ROOT / os.environ.get("BENCH_CONFIG", "config/bench.yml"))
    work_dir: Path = field(default_factory=lambda: ROOT / "var" / os.environ.get("BENCH_NAME", "bench"))

    def load(self, seconds=None, connections=None):
        return Load(threads=self.threads, connections=connections or self.connections,
                    seconds=self.duration if seconds is None else seconds)

    def wants(self, scenario):
        return scenario in self.scenarios
