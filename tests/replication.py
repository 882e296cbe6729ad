"""A MariaDB primary and a GTID replica of our own, for the tests of read replicas (``mariadb_replication``).

The machine's server (3306) has ``log_bin`` off, so it cannot be a primary. These are two more ``mariadbd``
processes, each with a datadir from ``mariadb-install-db`` in a temporary folder, its own socket and a free
loopback port; the replica follows the primary with ``MASTER_USE_GTID=slave_pos``. The fixture is per session
(two servers start in a few seconds); each test makes its own databases on the primary, which replicate.
"""

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pymysql

START_SECONDS = 60


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tool(name):
    for folder in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


class Server:
    """One ``mariadbd`` on its own datadir, socket and port; ``stop()``/``kill()`` and ``start()`` again."""

    def __init__(self, root, name, server_id):
        self.folder = os.path.join(root, name)
        self.datadir = os.path.join(self.folder, "data")
        self.socket = os.path.join(self.folder, "mysqld.sock")
        self.server_id = server_id
        self.port = free_port()
        self.process = None
        os.makedirs(self.folder)
        subprocess.run([tool("mariadb-install-db"), "--no-defaults", "--auth-root-authentication-method=normal",
                        f"--datadir={self.datadir}", f"--user={getpass.getuser()}", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self):
        log = open(os.path.join(self.folder, "error.log"), "ab")  # noqa: SIM115 -- the server's whole life
        self.process = subprocess.Popen(
            [tool("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.folder}/mysqld.pid",
             f"--user={getpass.getuser()}", f"--server-id={self.server_id}", "--log-bin=mariadb-bin",
             "--binlog-format=ROW", f"--gtid-domain-id={self.server_id}", "--log-slave-updates",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--skip-name-resolve",
             "--max-connections=300", "--performance-schema=OFF"],
            stdout=log, stderr=log)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                self.connect().close()
                return
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start; see {self.folder}/error.log") from None
                time.sleep(0.1)

    def connect(self, **options):
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True,
                               connect_timeout=2, **options)

    def query(self, sql):
        connection = self.connect()
        try:
            with connection.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            connection.close()

    def uri(self, database):
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.process = None

    def kill(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


class Replication:
    """The primary and one replica. ``databases(names)`` makes fresh databases on the primary, waits until the
    replica has them, and gives ``{name: (primary_uri, replica_uri)}``."""

    def __init__(self, root):
        self.primary = Server(root, "primary", 1)
        self.replica = Server(root, "replica", 2)

    def start(self):
        self.primary.start()
        self.replica.start()
        self.primary.query("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'")
        self.primary.query("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        self.replica.query(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
                           "MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_CONNECT_RETRY=1, "
                           "MASTER_USE_GTID=slave_pos")
        self.replica.query("START SLAVE")
        self.wait_until_caught_up()

    def primary_position(self):
        return self.primary.query("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]

    def wait_until_caught_up(self, timeout=30):
        position = self.primary_position()
        row = self.replica.query(f"SELECT MASTER_GTID_WAIT('{position}', {timeout}) AS done")[0]
        if row["done"] != 0:
            raise RuntimeError(f"the replica did not reach {position} within {timeout}s")

    def databases(self, names):
        prefix = f"pos_r_{uuid.uuid4().hex[:8]}"
        made = {name: f"{prefix}_{name}" for name in names}
        for database in made.values():
            self.primary.query(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        self.wait_until_caught_up()
        return {name: (self.primary.uri(db), self.replica.uri(db)) for name, db in made.items()}

    def drop(self, uris):
        for primary_uri, _ in uris.values():
            database = primary_uri.rsplit("/", 1)[1].split("?")[0]
            self.primary.query(f"DROP DATABASE IF EXISTS `{database}`")

    def replica_running(self):
        return self.replica.process is not None

    def delay(self, seconds):
        """The replica applies each transaction ``seconds`` after the primary committed it (MASTER_DELAY)."""
        self.replica.query("STOP SLAVE")
        self.replica.query(f"CHANGE MASTER TO MASTER_DELAY={int(seconds)}")
        self.replica.query("START SLAVE")

    def restore(self):
        """Back to a running, replicating, caught-up replica without delay (after a test stopped, delayed or
        killed it)."""
        if not self.replica_running():
            self.replica.start()
        self.delay(0)
        self.wait_until_caught_up()

    def stop(self):
        self.replica.stop()
        self.primary.stop()


def unavailable_reason():
    """Why the replication fixture cannot run here, or ``None``."""
    missing = [name for name in ("mariadbd", "mariadb-install-db") if tool(name) is None]
    return f"not installed: {', '.join(missing)} (apt-get install mariadb-server)" if missing else None


def start_replication():
    root = tempfile.mkdtemp(prefix="pos-replication-")
    replication = Replication(root)
    try:
        replication.start()
    except BaseException:
        replication.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return replication, root
