"""What a phase cost the whole machine's share of the system: the CPU of the shared servers (RabbitMQ, MariaDB,
Redis, the bench's tansu) beside the system's own processes, and how many SQL statements and AMQP messages it took.

The servers are shared with anything else on the machine, so their figures are only this system's on a quiet machine
(the report says the load average of each run). Counts come from the servers themselves: MariaDB's global
``Questions`` status and RabbitMQ's per-vhost message statistics (management API).
"""

import time
from urllib.parse import quote

import psutil
import pymysql
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.infra import MANAGEMENT, MYSQL

SERVERS = {  # process name (psutil) -> the report's name
    "beam.smp": "rabbitmq",
    "mariadbd": "mariadb",
    "mysqld": "mariadb",
    "redis-server": "redis",
}


def server_pids(kafka_pid=None):
    """``{name: pid}`` of the shared servers running on this machine, and of the bench's own tansu."""
    found = {}
    for process in psutil.process_iter(["name", "pid"]):
        name = SERVERS.get(process.info["name"])
        if name and name not in found:
            found[name] = process.info["pid"]
    if kafka_pid:
        found["kafka"] = kafka_pid
    return found


class CpuWindow:
    """CPU seconds (user + system, children included) each process spent between ``start()`` and ``stop()``."""

    def __init__(self, pids):
        self.processes = {}
        for name, pid in pids.items():
            try:
                self.processes[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass
        self.first, self.used = {}, {}

    @staticmethod
    def _seconds(process):
        times = process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def start(self):
        self.first = {name: self._seconds(p) for name, p in self.processes.items() if p.is_running()}
        return self

    def stop(self):
        for name, process in self.processes.items():
            try:
                self.used[name] = self._seconds(process) - self.first.get(name, 0.0)
            except psutil.Error:
                continue
        return self.used

    def total(self):
        return sum(self.used.values())


class Counters:
    """SQL statements (MariaDB ``Questions``), AMQP messages published in one vhost and RPC calls served (the
    processes' own ``pos_entrypoint_calls_total``, health pings left out), between two reads."""

    def __init__(self, vhost, metrics_ports=()):
        self.vhost_url = f"{MANAGEMENT}/api/vhosts/{quote(vhost, safe='')}"
        self.metrics_ports = tuple(metrics_ports)
        self.first = {}

    def read(self):
        return {"sql": self._questions(), "amqp": self._published(), "rpc": self._rpc_calls()}

    def start(self):
        self.first = self.read()
        return self

    def delta(self):
        now = self.read()
        return {key: (now[key] - self.first[key]) if None not in (now[key], self.first.get(key)) else None
                for key in now}

    @staticmethod
    def _questions():
        try:
            connection = pymysql.connect(**MYSQL)
        except pymysql.Error:
            return None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
                return int(cursor.fetchone()[1])
        finally:
            connection.close()

    def _published(self):
        try:
            stats = requests.get(self.vhost_url, auth=("guest", "guest"), timeout=10).json().get("message_stats", {})
        except (requests.RequestException, ValueError):
            return None
        return stats.get("publish", 0)

    def _rpc_calls(self):
        if not self.metrics_ports:
            return None
        calls = 0
        for port in self.metrics_ports:
            text = metrics_text(port)
            if text is None:
                print(f"bench: no RPC count: metrics port {port} did not answer", flush=True)
                return None
            calls += sum(sample.value for family in text_string_to_metric_families(text)
                         for sample in family.samples
                         if sample.name == "pos_entrypoint_calls_total" and sample.labels.get("kind") == "rpc"
                         and sample.labels.get("entrypoint") != "ping")
        return calls


def metrics_text(port, attempts=15):
    """A process's Prometheus text, or None; a process still starting gets ``attempts`` seconds."""
    for attempt in range(attempts):
        try:
            return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            if attempt < attempts - 1:
                time.sleep(1)
    return None
