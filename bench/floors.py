"""The HTTP floors (bench/floor_services.py) and the experiments that try to make the RPC hop cheaper."""

from dataclasses import dataclass

from bench import profiling
from bench.loadgen import run_wrk
from bench.whole_system import CpuWindow
from scripts.processes import Fleet, StartFailed


@dataclass
class Experiment:
    label: str
    processes: int = 1
    env: dict = None


BARE = [Experiment("1 process (the floor)"), Experiment("2 processes on one port (SO_REUSEPORT)", 2)]
HOP = [
    Experiment("nameko defaults: prefetch 10, max_workers 10, confirms, persistent (the floor)"),
    Experiment("prefetch 40, max_workers 40", env={"PREFETCH_COUNT": "40", "MAX_WORKERS": "40"}),
    Experiment("prefetch 2, max_workers 32", env={"PREFETCH_COUNT": "2", "MAX_WORKERS": "32"}),
    Experiment("no publisher confirms, transient messages", env={"BENCH_FAST_PUBLISH": "1"}),
    Experiment("serializer pickle instead of json", env={"SERIALIZER": "pickle"}),
    Experiment("this system's common.rpc (no confirms, transient, reply queue declared once, read-ahead)",
               env={"BENCH_COMMON_RPC": "1"}),
    Experiment("2 processes per service (SO_REUSEPORT)", 2),
    Experiment("2 processes per service, no confirms, transient", 2, {"BENCH_FAST_PUBLISH": "1"}),
    Experiment("nameko defaults again (how much the machine's other work moves a figure)"),
]


def measure(name, base_url, requests, settings, wrk, token=None, connections=None, profile=None, cpu_of=None):
    """A short warm-up run (discarded), then the measured one; ``profile`` {process: pid} are sampled by py-spy;
    the CPU seconds of ``cpu_of`` {process: pid} during the measured run go to the result's ``cpu_seconds``."""
    if settings.warmup > 0:
        run_wrk(f"{name} warm-up", base_url, requests, settings.load(settings.warmup, connections), token, wrk)
    recorders = []
    for process, pid in (profile or {}).items():
        slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower())[:60]
        out = settings.work_dir / f"profile-{process}-{slug}.txt"
        recorders.append((process, out, profiling.start(pid, settings.duration, out)))
    window = CpuWindow(cpu_of or {}).start()
    result = run_wrk(name, base_url, requests, settings.load(connections=connections), token, wrk)
    result.cpu_seconds = window.stop()
    result.profiles = [profiling.finish(process, recorder, out) for process, out, recorder in recorders]
    return result


def run_floor(kind, experiment, settings, env, wrk, log_dir, profile=False, light=False, servers=None):
    """Start the floor's processes with the experiment's settings, load it, stop them; ``light`` also measures
    it with ``light_connections`` (returned as a second result). The CPU of the floor's processes and of
    ``servers`` {name: pid} is counted in the measured runs."""
    port = settings.floor_port
    fleet = Fleet(log_dir, env)
    extra = {**(experiment.env or {}), "GATEWAY_ADDRESS": f"127.0.0.1:{port}", "METRICS_PORT": ""}
    try:
        for copy in range(experiment.processes):
            if kind == "hop":
                fleet.nameko(f"floor_constant_{copy}", "bench.floor_services:ConstantService", settings.config, extra)
            service = "BareHttp" if kind == "bare" else "HopHttp"
            fleet.nameko(f"floor_{kind}_{copy}", f"bench.floor_services:{service}", settings.config, extra)
        base_url = f"http://127.0.0.1:{port}"
        fleet.wait_for_http(f"{base_url}/{kind}")
        targets = {name: pid for name, pid in fleet.pids().items() if name.endswith("_0")} if profile else None
        cpu_of = {**(servers or {}), **fleet.pids()}
        result = measure(f"{kind}: {experiment.label}", base_url, [("GET", f"/{kind}")], settings, wrk,
                         profile=targets, cpu_of=cpu_of)
        if not light:
            return result
        return result, measure(f"{kind}: {experiment.label.replace(' (the floor)', '')}, light load "
                               f"(-c{settings.light_connections})", base_url, [("GET", f"/{kind}")], settings, wrk,
                               connections=settings.light_connections, cpu_of=cpu_of)
    finally:
        fleet.stop()


def run_floors(settings, env, wrk, log_dir, servers=None):
    """``{"bare": [results], "hop": [results]}``; the first of each list is the floor proper."""
    bare = BARE if settings.floor_experiments else BARE[:1]
    hop = HOP if settings.floor_experiments else HOP[:1]
    results = {"bare": [], "hop": [], "hop_light": None}
    for kind, experiments in (("bare", bare), ("hop", hop)):
        for index, experiment in enumerate(experiments):
            profile = settings.profile and kind == "hop" and index == 0
            light = kind == "hop" and index == 0 and settings.light_connections > 0
            outcome = run_floor_once_more(kind, experiment, settings, env, wrk, log_dir, profile, light, servers,
                                          required=index == 0)
            if outcome is None:
                continue
            for result in outcome if light else (outcome,):
                print(f"bench: floor {result.name}: {result.rps:.0f} req/s, p99 {result.p99:.1f} ms", flush=True)
                if "light load" in result.name:
                    results["hop_light"] = result
                else:
                    results[kind].append(result)
    return results


def run_floor_once_more(kind, experiment, *args, required=False):
    """``run_floor``, tried a second time if its processes did not come up (nameko's own RPC client can die at
    start-up on a reply queue it has not declared yet, ``ReplyQueueExpiredWithPendingReplies``: the experiments run
    nameko as it ships). An experiment that fails twice is left out; the floor proper is required."""
    for attempt in (1, 2):
        try:
            return run_floor(kind, experiment, *args)
        except StartFailed as exc:
            print(f"bench: floor {kind}: {experiment.label}: did not start (attempt {attempt}): {exc}", flush=True)
    if required:
        raise StartFailed(f"the {kind} floor did not start twice")
    return None
