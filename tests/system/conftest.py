"""The whole system as `make run` starts it (scripts.run_system's process list, scripts.processes.Fleet), on its own
RabbitMQ vhost, SQLite files in a tmp dir, its own tansu and free ports; one system per test module."""

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from bench.infra import Vhost
from scripts.processes import ROOT, Fleet, stop_process
from scripts.run_system import GRPC_APIS, NAMEKO_PROCESSES
from scripts.seed import admin_session
from scripts.tansu import free_port, launch
from tests.system.servers import PrivateMariaDB

CONFIG = ROOT / "config" / "dev.yml"
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1 9GU",
           "country": "GB"}
# tests/services/orders/conftest.py FAST_SAGA, as the environment `nameko run` reads through config/dev.yml
FAST_SAGA_ENV = {"PAYMENT_TIMEOUT_SECONDS": "1", "PAYMENT_PENDING_TIMEOUT_SECONDS": "2",
                 "ORDERS_RECONCILE_INTERVAL_SECONDS": "0.3", "ORDERS_SETTLE_RETRY_SECONDS": "0.5",
                 "ORDERS_RESERVATION_TIMEOUT_SECONDS": "5", "RPC_TIMEOUT_SECONDS": "10",
                 "OUTBOX_POLL_INTERVAL": "0.2"}
RPC_DEADLINE = 10
# config/dev.yml's saga timeouts (uat and prod wait longer): an outage shorter than them fails no order. FAST_SAGA's
# 2 s and 5 s would fail, rightly, every order a 20 s outage catches between its steps.
OUTAGE_SAGA_ENV = {"PAYMENT_PENDING_TIMEOUT_SECONDS": "60", "ORDERS_RESERVATION_TIMEOUT_SECONDS": "60"}
DATABASE_SERVICES = ("accounts", "products", "inventory", "orders", "notifications", "webhooks")


class System:
    def __init__(self, work_dir, broker=None, mariadb=None, extra_env=None, replicas=None):
        """``broker``: a ``tests.system.servers.PrivateRabbit`` (started) to use instead of a vhost of the shared
        RabbitMQ; ``mariadb``: a ``PrivateMariaDB`` (started) to keep every service's database in instead of
        SQLite; ``extra_env``: settings over ``FAST_SAGA_ENV``; ``replicas``: ``{process: n}`` to run ``n``
        processes of a Nameko service (named ``orders``, ``orders-2``, ...; one of each other)."""
        self.work_dir = work_dir
        self.broker = broker
        self.mariadb = mariadb
        self.vhost = None if broker else Vhost(f"pos_system_{uuid.uuid4().hex[:8]}")
        self.gateway_port = free_port()
        self.kafka_port = free_port()
        self.provider_address = f"127.0.0.1:{free_port()}"
        self.inventory_grpc_address = f"127.0.0.1:{free_port()}"
        self.base_url = f"http://127.0.0.1:{self.gateway_port}"
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.nameko_processes = [(replica_name(name, n), service) for name, service in NAMEKO_PROCESSES
                                 for n in range(1, (replicas or {}).get(name, 1) + 1)]
        self.metrics = {name: free_port() for name, _ in self.nameko_processes}
        self.env = {**os.environ, **FAST_SAGA_ENV, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore",
                    "POS_CONFIG": str(CONFIG), "GATEWAY_ADDRESS": f"127.0.0.1:{self.gateway_port}",
                    "PUBLIC_BASE_URL": self.base_url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                    "PAYMENT_PROVIDER_ADDRESS": self.provider_address, "REDIS_URI": "",
                    "INVENTORY_GRPC_ADDRESS": self.inventory_grpc_address,
                    "RATE_LIMIT_ORDERS": "100000/minute", "RATE_LIMIT_AUTH": "100000/minute",
                    "RATE_LIMIT_WRITES": "100000/minute", "RATE_LIMIT_READS": "100000/minute",
                    "MAILDIR_PATH": str(work_dir / "mail"), "INVOICE_DIR": str(work_dir / "invoices"),
                    "ADMIN_EMAIL": "admin@example.com", "ADMIN_PASSWORD": "admin12345",
                    "HEALTH_SERVICES": "", "LOG_FORMAT": "text", **(extra_env or {})}
        for service in DATABASE_SERVICES:
            self.env[f"{service.upper()}_DB_URI"] = (mariadb.uri(f"pos_{service}") if mariadb
                                                     else f"sqlite:///{work_dir}/{service}.db")
        self.fleet = Fleet(work_dir / "log", self.env)
        self.kafka = None
        self.commands = {}

    # -- starting and stopping
    def start(self):
        self.env["AMQP_URI"] = self.broker.amqp_uri if self.broker else self.vhost.create().amqp_uri
        self.start_kafka()
        if self.mariadb:
            self.mariadb.create_databases(f"pos_{service}" for service in DATABASE_SERVICES)
        subprocess.check_call([sys.executable, "-m", "common.migrations", "--config", str(CONFIG)], cwd=ROOT,
                              env=self.env, stdout=subprocess.DEVNULL)
        self.commands["payment_provider"] = ([sys.executable, "-m", "payment_provider.server", "--address",
                                              self.provider_address, "--db", str(self.work_dir / "provider.db")],
                                             {})
        for name, service in self.nameko_processes:
            self.commands[name] = (["nameko"], (service, {"METRICS_PORT": str(self.metrics[name])}))
        for name, module, arguments in GRPC_APIS:
            self.commands[name] = ([sys.executable, "-m", module, *(a.format(config=CONFIG) for a in arguments)], {})
        for name in self.commands:
            self.launch(name)
        self.fleet.wait_for_http(f"{self.base_url}/health/ready", timeout=120)

    def launch(self, name):
        argv, extra = self.commands[name]
        if argv == ["nameko"]:
            service, env = extra
            return self.fleet.nameko(name, service, CONFIG, env)
        return self.fleet.start(name, argv)

    def start_kafka(self):
        self.kafka = launch(self.kafka_port, log_path=self.work_dir / "log" / "tansu.log")

    def child(self, name):
        return next(child for n, child in self.fleet.children if n == name and child.poll() is None)

    def kill(self, name):
        """SIGKILL ``name`` (no clean shutdown: unacked messages go back to the broker)."""
        child = self.child(name)
        child.kill()
        child.wait()
        self.fleet.children = [(n, c) for n, c in self.fleet.children if c is not child]

    def restart_kafka(self, down_seconds=1.0):
        self.kafka.kill()  # memory storage: SIGTERM or SIGKILL, it forgets everything either way
        self.kafka.wait()
        time.sleep(down_seconds)
        self.start_kafka()

    def stop(self):
        self.fleet.stop()
        if self.kafka is not None:
            stop_process(self.kafka, 10)
        if self.vhost is not None:
            self.vhost.delete()

    def exited(self):
        return self.fleet.check()

    def log_digest(self, per_process=25):
        """The last warnings and errors of every process: what a failed test's report shows, since the logs
        themselves go with the CI machine's tmp dir."""
        notable = ("WARNING", "ERROR", "CRITICAL", "Traceback", "exited with code")
        parts = []
        for path in sorted((self.work_dir / "log").glob("*.log")):
            lines = [line for line in path.read_text(errors="replace").splitlines()
                     if any(word in line for word in notable)]
            if lines:
                parts.append(f"--- {path.name} ({len(lines)} notable lines, the last {per_process}):")
                parts.extend(line[:400] for line in lines[-per_process:])
        return "\n".join(parts) or "no warning or error in any process log"

    # -- the public API
    def session(self, email, password):
        return admin_session(self.base_url, email, password, timeout=15)

    def admin(self):
        return self.session("admin@example.com", "admin12345")

    def customer(self):
        email = f"c{uuid.uuid4().hex[:10]}@example.com"
        requests.post(f"{self.base_url}/auth/register", json={"email": email, "password": "secret-pass-1",
                                                              "name": "Ada"}, timeout=15).raise_for_status()
        return self.session(email, "secret-pass-1")

    def product(self, admin, stock):
        reply = admin.post(f"{self.base_url}/products", json={
            "sku": f"SYS-{uuid.uuid4().hex[:10]}", "name": "Widget", "price": "3.50", "initial_stock": stock},
            timeout=15)
        reply.raise_for_status()
        product = reply.json()
        wait(lambda: self.stock(admin, product["id"]) is not None, 30, "stock for the new product")
        return product

    def stock(self, admin, product_id):
        reply = admin.get(f"{self.base_url}/products/{product_id}/stock", timeout=15)
        return reply.json() if reply.status_code == 200 else None


def replica_name(name, n):
    """The process name of the ``n``th (from 1) process of ``name``: the first keeps the name."""
    return name if n == 1 else f"{name}-{n}"


def wait(predicate, timeout, message, interval=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class Stream:
    """Orders placed over HTTP from a few threads; remembers every answer ``(status, seconds, Retry-After, error
    code)``."""

    def __init__(self, system, customers, product_id, per_thread, pause=0.4):
        self.system, self.customers, self.product_id = system, customers, product_id
        self.per_thread, self.pause = per_thread, pause
        self.accepted, self.answers, self.refused, self.lock = [], [], [], threading.Lock()
        self.threads = [threading.Thread(target=self._place, args=(c,), daemon=True) for c in customers]
        self.stopping = threading.Event()
        self.keys = itertools.count()

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        """No new order after the ones in flight."""
        self.stopping.set()

    def accepted_since(self, moment):
        with self.lock:
            return [order for _, order, accepted_at in self.accepted if accepted_at > moment]

    def join(self, timeout=180):
        for thread in self.threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "an order thread is still waiting"

    def _place(self, session):
        for _ in range(self.per_thread):
            if self.stopping.is_set():
                return
            self.place(session, f"k-{uuid.uuid4().hex}")
            time.sleep(self.pause)

    def place(self, session, key):
        """One order under ``key`` (the same key again is the client's retry); its status."""
        body = {"items": [{"product_id": self.product_id, "quantity": 1}], "shipping_address": ADDRESS,
                "payment_token": "tok_visa"}
        began = time.monotonic()
        try:
            reply = session.post(f"{self.system.base_url}/orders", json=body, headers={"Idempotency-Key": key},
                                 timeout=RPC_DEADLINE + 10)
            status, retry_after = reply.status_code, reply.headers.get("Retry-After")
            order = reply.json() if status in (200, 201) else None  # 200: a retry found its key's order
            code = None if order is not None else error_code(reply)
        except requests.RequestException as exc:
            status, retry_after, order, code = type(exc).__name__, None, None, None
        with self.lock:
            self.answers.append((status, time.monotonic() - began, retry_after, code))
            if order is not None:
                self.accepted.append((session, order, time.monotonic()))
            else:
                self.refused.append((session, key))
        return status


def error_code(reply):
    """The API.md error body's code, or what came instead of one."""
    try:
        return reply.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"not an error body: {reply.text[:80]!r}"


def assert_refused_cleanly(stream, fault):
    """Some requests met ``fault``; each one refused is a 503 ``service_unavailable`` with ``Retry-After``, and no
    answer took longer than the RPC deadline (plus slack)."""
    refused = [a for a in stream.answers if a[0] != 201]
    assert refused, f"no request met {fault}"
    assert all(status == 503 and retry and code == "service_unavailable"
               for status, _, retry, code in refused), refused
    assert max(seconds for _, seconds, _, _ in stream.answers) < RPC_DEADLINE + 3, stream.answers


def assert_all_paid_and_on_kafka(system, stream, admin, product_id, start_stock, since=None, timeout=90,
                                 committed=None):
    """Every accepted (or ``committed``: every placed) order PAID, its order.created and order.paid on Kafka,
    stock on hand = start - paid units."""
    assert stream.accepted, f"no order was accepted: {stream.answers}"
    ids = {order["id"] for _, order, _ in stream.accepted}
    if committed is not None:  # orders the API did not answer 201 for may have been placed all the same
        assert ids <= committed
        ids = committed

    def unpaid():
        left = set()
        for order_id in ids:
            reply = admin.get(f"{system.base_url}/orders/{order_id}", timeout=15)
            if reply.status_code != 200 or reply.json()["status"] != "PAID":
                left.add((order_id, reply.status_code == 200 and reply.json()["status"]))
        return left

    wait(lambda: not unpaid(), timeout, "every accepted order to be PAID")
    wanted = {(str(i), t) for i in ids for t in ("order.created", "order.paid")}
    if since is not None:  # tansu forgot what came before its restart: only what it was given after
        wanted = {(str(i), "order.paid") for i in since}
    found = read_kafka(system.bootstrap, "pos.orders", wanted, timeout=60)
    assert wanted <= found, f"missing on Kafka: {sorted(wanted - found)[:10]} ({len(wanted - found)} in all)"
    stock = wait(lambda: (s := system.stock(admin, product_id)) and s["reserved"] == 0 and s, 30,
                 "no stock left reserved")
    assert stock["on_hand"] == start_stock - len(ids)
    assert stock["reserved"] == 0


def assert_retries_place_each_order_once(system, stream, customers):
    """Every refused request sent again with its key is placed (201), or finds the order it had placed after all
    (200); the customers then have exactly the orders those answers name: none placed twice, none unknown. The set
    of those orders."""
    refused, stream.refused = list(stream.refused), []
    retried = [stream.place(session, key) for session, key in refused]
    assert set(retried) <= {200, 201}, stream.answers[-len(refused):]
    accepted = [order["id"] for _, order, _ in stream.accepted]
    placed = placed_orders(system, customers)
    assert sorted(set(accepted)) == sorted(accepted)  # one order per key
    assert placed == set(accepted)
    return placed


def placed_orders(system, customers):
    """The ids of every order the ``customers`` have, as their own ``GET /orders`` lists them."""
    ids = set()
    for session in customers:
        page = 1
        while True:
            reply = session.get(f"{system.base_url}/orders", params={"page": page, "page_size": 100}, timeout=15)
            reply.raise_for_status()
            listing = reply.json()
            ids |= {order["id"] for order in listing["items"]}
            if page * listing["page_size"] >= listing["total"]:
                break
            page += 1
    return ids


def read_kafka(bootstrap, topic, wanted, timeout, event_ids=None):
    """``{(key, event_type)}`` read from every partition of ``topic`` from the start (assign(): no group join);
    ``event_ids``: a dict to fill with ``{(key, event_type): {event_id, ...}}`` of every record read, reading on
    once ``wanted`` is found until the topic has nothing more (a repeat comes after what it repeats)."""
    import json

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    found = set()
    try:
        deadline = time.monotonic() + timeout
        assigned = set()
        while time.monotonic() < deadline and not (wanted <= found and event_ids is None):
            if not assigned or len(found) % 50 == 0:  # metadata may list a topic before all its partitions
                partitions = set(consumer.list_topics(topic, timeout=5).topics[topic].partitions or ())
                if partitions - assigned:
                    consumer.incremental_assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                                                 for p in partitions - assigned])
                    assigned |= partitions
            message = consumer.poll(0.5)
            if message is None and wanted <= found:
                break
            if message is None or message.error():
                continue
            envelope = json.loads(message.value())
            key = (str(envelope["aggregate_id"]), envelope["event_type"])
            found.add(key)
            if event_ids is not None:
                event_ids.setdefault(key, set()).add(envelope["event_id"])
    finally:
        consumer.close()
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    system = item.funcargs.get("system") if report.failed and report.when == "call" else None
    if isinstance(system, System):
        report.sections.append(("the system's process logs", system.log_digest()))


def running(system):
    """A module fixture's body: ``system`` started, stopped after the module (``yield from running(System(...))``)."""
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    yield from running(System(tmp_path_factory.mktemp("system")))


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """A private ``mariadbd`` for a module whose system keeps every database there (and may restart it)."""
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin(system):
    return system.admin()
