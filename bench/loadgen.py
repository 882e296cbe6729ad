"""wrk as the load generator: a second process on loopback, requests cycled from a file by bench/lua/requests.lua."""

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).parent / "lua" / "requests.lua"


@dataclass
class LoadResult:
    """What one wrk run measured; latencies in milliseconds."""

    name: str
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    error_kinds: dict = field(default_factory=dict)
    p50: float = 0.0
    p90: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    mean: float = 0.0
    profiles: list = field(default_factory=list)
    cpu_seconds: dict = field(default_factory=dict)  # {process: CPU seconds} during the run, when counted
    load_average: float = 0.0  # the machine's 1-minute load average as the run ended (2 cores)

    def cpu_ms_per_request(self):
        """Whole-system CPU per completed request (every counted process), or None when nothing was counted."""
        if not self.cpu_seconds or not self.requests:
            return None
        return 1000 * sum(self.cpu_seconds.values()) / self.requests

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0

    @classmethod
    def from_wrk(cls, name, data):
        kinds = {kind: data[kind] for kind in ("connect", "read", "write", "status", "timeout") if data[kind]}
        return cls(name=name, requests=data["requests"], seconds=data["duration_us"] / 1e6,
                   errors=sum(kinds.values()), error_kinds=kinds,
                   **{key: data[f"{key}_us"] / 1000.0 for key in ("p50", "p90", "p95", "p99", "max", "mean")})


@dataclass
class Load:
    """How hard to push: ``wrk -t<threads> -c<connections> -d<seconds>``; ``delay_ms`` paces each connection."""

    threads: int = 2
    connections: int = 32
    seconds: float = 10.0
    timeout: float = 10.0
    delay_ms: int = 0


def request_lines(requests):
    """``(method, path[, body])`` tuples as the lines the Lua script reads."""
    lines = []
    for method, path, *body in requests:
        text = json.dumps(body[0], separators=(",", ":")) if body else ""
        lines.append(f"{method}\t{path}\t{text}" if text else f"{method}\t{path}")
    return "\n".join(lines) + "\n"


def run_wrk(name, base_url, requests, load, token=None, wrk="wrk"):
    """Run wrk against ``base_url`` cycling through ``requests``; returns a ``LoadResult``."""
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        handle.write(request_lines(requests))
    env = {**os.environ, "BENCH_REQUESTS": handle.name, "BENCH_TOKEN": token or "",
           "BENCH_DELAY_MS": str(load.delay_ms)}
    argv = [wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{max(1, round(load.seconds))}s",
            f"--timeout={load.timeout:g}s", "-s", str(LUA), base_url]
    try:
        output = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    summary = next(line for line in reversed(output.splitlines()) if line.startswith("{"))
    result = LoadResult.from_wrk(name, json.loads(summary))
    result.load_average = os.getloadavg()[0]
    return result
