"""Private broker and database servers for the outage tests: a RabbitMQ node and a MariaDB server of the test's own,
on free ports with their data in a tmp dir, so stopping them touches nobody else's (the shared ones on 5672 and
3306 stay up)."""

import os
import signal
import subprocess
import time
from pathlib import Path

from bench.infra import port_answers
from scripts.tansu import free_port

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # the Debian wrapper in /usr/sbin would switch to the rabbitmq user
RABBITMQ_PLUGINS = "[rabbitmq_consistent_hash_exchange]."  # the bridge's shards; no management (nobody needs it)


def wait_for_port(port, timeout, message):
    deadline = time.monotonic() + timeout
    while not port_answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} did not answer on 127.0.0.1:{port} within {timeout}s")
        time.sleep(0.2)


class PrivateRabbit:
    """``rabbitmq-server`` as a node of its own (``pos_<id>@localhost``); ``stop_app``/``start_app`` is the
    outage (the Erlang VM stays, the listener and every connection go), ``stop`` the end."""

    def __init__(self, base_dir, name):
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.node = f"{name}@localhost"
        self.port = free_port()
        self.amqp_uri = f"pyamqp://guest:guest@127.0.0.1:{self.port}//"
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.dir / "enabled_plugins").write_text(RABBITMQ_PLUGINS)
        (self.dir / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's (it names the shared node)
        self.env = {**os.environ, "HOME": str(self.dir), "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(free_port()),
                    "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                    "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                    "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                    "ERL_EPMD_ADDRESS": "127.0.0.1"}
        self.process = None

    def start(self, timeout=60):
        with open(self.dir / "server.out", "ab") as out:
            self.process = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout, f"RabbitMQ node {self.node}")
        self.ctl("await_startup")
        return self

    def ctl(self, *args, timeout=60):
        subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env, check=True,
                       timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_app(self):
        self.ctl("stop_app")

    def start_app(self):
        self.ctl("start_app")
        wait_for_port(self.port, 30, f"RabbitMQ node {self.node}")

    def stop(self):
        if self.process is None:
            return
        try:
            self.ctl("stop", timeout=30)
        except (subprocess.SubprocessError, OSError):
            pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the Erlang VM with the script that started it
            self.process.wait()
        self.process = None


class PrivateMariaDB:
    """``mariadbd`` with a datadir of its own (``mariadb-install-db``), root without a password on a free port;
    ``restart()`` is a clean shutdown (SIGTERM), ``down_seconds`` without a server, then the same datadir again."""

    def __init__(self, base_dir):
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = None
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.dir / 'data'}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def uri(self, database):
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def start(self, timeout=60):
        argv = ["mariadbd", "--no-defaults", f"--datadir={self.dir / 'data'}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.dir / 'mariadb.sock'}", "--user=root",
                f"--pid-file={self.dir / 'mariadb.pid'}", f"--log-error={self.dir / 'error.log'}",
                "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--max-connections=500"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for_port(self.port, timeout, "mariadbd")
        return self

    def create_databases(self, names):
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", autocommit=True)
        try:
            with connection.cursor() as cursor:
                for name in names:
                    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            connection.close()

    def stop(self, timeout=60):
        if self.process is None:
            return
        self.process.terminate()  # mariadbd shuts down cleanly on SIGTERM
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, down_seconds):
        self.stop()
        time.sleep(down_seconds)
        self.start()
