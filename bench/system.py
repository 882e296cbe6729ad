"""The whole system as `make run` starts it (scripts/run_system.py's process list), on the bench's config and ports."""

import subprocess
import sys
from importlib.util import find_spec

from bench.infra import SERVICES_WITH_DATABASE
from scripts.processes import ROOT, Fleet
from scripts.run_system import NAMEKO_PROCESSES


def migrate(settings, env):
    services = [name for name in SERVICES_WITH_DATABASE if (ROOT / "services" / name / "migrations").is_dir()]
    subprocess.check_call([sys.executable, "-m", "common.migrations", "--config", str(settings.config), *services],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def start_system(settings, env, payment_address):
    """Start the payment provider and every Nameko process that exists yet; returns the Fleet once the gateway
    answers ``/health``."""
    fleet = Fleet(settings.work_dir / "log", env)
    started = []
    try:
        if find_spec("payment_provider.server") is not None:
            fleet.start("payment_provider", [sys.executable, "-m", "payment_provider.server",
                                             "--address", payment_address,
                                             "--db", str(settings.work_dir / "payment_provider.db")])
        for index, (name, service) in enumerate(NAMEKO_PROCESSES):
            if find_spec(service.split(":")[0]) is None:
                print(f"bench: {name} is not there yet ({service}); skipped", flush=True)
                continue
            fleet.nameko(name, service, settings.config, {"METRICS_PORT": str(settings.metrics_port + index)})
            started.append(name)
        fleet.wait_for_http(f"http://127.0.0.1:{settings.gateway_port}/health")
    except BaseException:
        fleet.stop()
        raise
    return fleet, started


def rebuild_search_index(env):
    """Have the products service read its catalogue into its text index again; -> what it answered."""
    code = ("from nameko import config\nfrom nameko.standalone.rpc import ClusterRpcClient\n"
            f"with config.patch({{'AMQP_URI': {env['AMQP_URI']!r}}}), ClusterRpcClient(timeout=900) as rpc:\n"
            "    print(rpc.products.rebuild_search_index())")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=960,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "?"
