"""An ad-hoc A/B of text search, not part of ``make bench``: the products service with its text index against the
same service with ``SEARCH_TEXT_INDEX=0`` (SQL), and a constant RPC (``bench_constant``, the hop's far end) as the
floor, all in one run on MariaDB, each at ``-c4`` (four clients, each waiting for its answer) over RPC.

    PYTHONPATH=. .venv/bin/python -m bench.search_ab 100000 [1000000]

Writes nothing but its report (stdout); drops its databases and vhost at the end.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import eventlet

eventlet.monkey_patch()  # noqa: E402

import random  # noqa: E402

import pymysql  # noqa: E402
import requests  # noqa: E402
from nameko import config  # noqa: E402
from nameko.standalone.rpc import ClusterRpcClient  # noqa: E402

from bench.kafka import percentiles  # noqa: E402
from bench.scenarios import search_requests  # noqa: E402
from bench.seed import Catalogue  # noqa: E402

MANAGEMENT = "http://127.0.0.1:15672/api"
AUTH = ("guest", "guest")
SECONDS = float(os.environ.get("SEARCH_AB_SECONDS", "20"))
CLIENTS = 4
PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")


def vhost():
    name = f"pos_search_ab_{uuid.uuid4().hex[:8]}"
    requests.put(f"{MANAGEMENT}/vhosts/{name}", auth=AUTH, timeout=10).raise_for_status()
    requests.put(f"{MANAGEMENT}/permissions/{name}/guest", auth=AUTH, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    return name


def databases():
    prefix = f"pos_sab_{uuid.uuid4().hex[:6]}"
    admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with admin.cursor() as cursor:
        for name in ("products", "inventory"):
            cursor.execute(f"CREATE DATABASE `{prefix}_{name}` CHARACTER SET utf8mb4")
    return admin, {name: f"mysql+pymysql://root@127.0.0.1/{prefix}_{name}?charset=utf8mb4"
                   for name in ("products", "inventory")}


def config_file(amqp_uri, uris, index_on, directory):
    body = {"AMQP_URI": amqp_uri, "serializer": "json", "max_workers": 10, "PREFETCH_COUNT": 10,
            "DB_URIS": {"products:Base": uris["products"], "inventory:Base": uris["inventory"]},
            "REDIS_URI": None, "CACHE_TTL_SECONDS": 600, "OUTBOX_POLL_INTERVAL": 1.0,
            "SEARCH_TEXT_INDEX": index_on, "SEARCH_INDEX": directory, "ENVIRONMENT": "bench",
            "DATA_ENCRYPTION_KEYS": "j92vsD50pV6BtJfD4NQO5OftuQ7ACpOFqNUvHs_GWqI=", "DATA_INDEX_KEY": "x" * 40}
    path = os.path.join(directory, f"products-{'index' if index_on else 'sql'}.json")
    with open(path, "w") as out:
        json.dump(body, out)  # JSON is YAML
    return path


def start(target, config_path):
    return subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config", config_path, target],
                            stdout=subprocess.DEVNULL, stderr=open(config_path + ".log", "w"))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def load(call, paths):
    """``CLIENTS`` clients (each its own connection) in a loop for ``SECONDS``; latencies in ms."""
    latencies, deadline = [], time.monotonic() + SECONDS
    rng = random.Random(1)

    def client():
        with ClusterRpcClient(timeout=60) as rpc:
            while time.monotonic() < deadline:
                params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(rng.choice(paths)[1]).query))
                started = time.perf_counter()
                call(rpc, params)
                latencies.append((time.perf_counter() - started) * 1000)

    pool = eventlet.GreenPool(CLIENTS)
    for _ in range(CLIENTS):
        pool.spawn(client)
    pool.waitall()
    figures = percentiles(latencies)
    return {"requests": len(latencies), "req_per_s": round(len(latencies) / SECONDS, 1),
            **{key: round(value, 1) for key, value in figures.items()}}


def main(sizes):
    name = vhost()
    amqp_uri = f"pyamqp://guest:guest@127.0.0.1:5672/{name}"
    admin, uris = databases()
    directory = tempfile.mkdtemp(prefix="search-ab-")
    processes = []
    report = {"clients": CLIENTS, "seconds": SECONDS, "sizes": {}}
    try:
        from common.migrations import upgrade
        with config.patch({"DB_URIS": {"products:Base": uris["products"], "inventory:Base": uris["inventory"]},
                           "DATA_ENCRYPTION_KEYS": "j92vsD50pV6BtJfD4NQO5OftuQ7ACpOFqNUvHs_GWqI=",
                           "DATA_INDEX_KEY": "x" * 40, "AMQP_URI": amqp_uri}):
            upgrade("products")
            upgrade("inventory")
            catalogue = Catalogue(uris["products"], uris["inventory"])
            floor = start("bench.floor_services:ConstantService", config_file(amqp_uri, uris, False, directory))
            processes.append(floor)
            for size in sizes:
                print(f"seeding {size}", file=sys.stderr, flush=True)
                seeded = catalogue.grow_to(size)
                catalogue.analyze()
                paths = search_requests(catalogue.category_ids, random.Random(5))["text"]
                point = report["sizes"][size] = {"seed_seconds": round(seeded, 1)}
                print("floor", file=sys.stderr, flush=True)
                eventlet.sleep(2)
                point["floor"] = load(lambda rpc, _params: rpc.bench_constant.constant(), paths)
                for mode, index_on in (("index", True), ("sql", False)):
                    products = start("services.products.service",
                                     config_file(amqp_uri, uris, index_on, directory))
                    processes.append(products)
                    print(mode, file=sys.stderr, flush=True)
                    started = time.monotonic()
                    while True:
                        try:
                            with ClusterRpcClient(timeout=2) as probe:
                                probe.products.list_categories()
                            break
                        except Exception:
                            eventlet.sleep(0.5)
                    with ClusterRpcClient(timeout=600) as rpc:
                        if index_on:
                            point["index_rebuild_rpc_seconds"] = round(_timed(rpc.products.rebuild_search_index), 1)
                            point["ready_seconds"] = round(time.monotonic() - started, 1)
                            point["rss_mb_after_build"] = round(rss_mb(products.pid), 1)
                        rpc.products.search_products({"q": "roast"})  # warm
                        spy = None
                        if os.environ.get("SEARCH_AB_PYSPY"):  # where the products process spends the load
                            spy = subprocess.Popen([PY_SPY, "record", "-p", str(products.pid), "-d",
                                                    str(int(SECONDS)), "-f", "raw", "-o",
                                                    f"/tmp/search-ab-{mode}-{size}.txt"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        point[mode] = load(lambda client, params: client.products.search_products(params), paths)
                        if spy is not None:
                            spy.wait(30)
                        if index_on:
                            point["rss_mb_after_load"] = round(rss_mb(products.pid), 1)
                    point[f"rss_mb_{mode}"] = round(rss_mb(products.pid), 1)
                    products.terminate()
                    products.wait(30)
                    processes.remove(products)
                print(json.dumps({size: point}), flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        with admin.cursor() as cursor:
            for uri in uris.values():
                cursor.execute(f"DROP DATABASE IF EXISTS `{uri.rsplit('/', 1)[1].split('?')[0]}`")
        requests.delete(f"{MANAGEMENT}/vhosts/{name}", auth=AUTH, timeout=10)
    print(json.dumps(report, indent=2))


def _timed(call):
    started = time.monotonic()
    call()
    return time.monotonic() - started


if __name__ == "__main__":
    main([int(size) for size in sys.argv[1:]] or [100_000])
