"""Readiness: is each dependency answering, and how fast? Plus the ``ping`` every service answers, and each
container's own readiness (``Readiness``, served on the process's probe port by ``common.probes``).

``run_checks({"broker": lambda: check_broker(uri, t), ...}, timeout)`` runs the checks side by side, each under
its own timeout, and returns ``(ready, {name: {"status": "UP"|"DOWN", "latency_ms": ..., "error"?: ...}})``.
Every check is green (it never blocks the eventlet hub): sockets are monkey-patched, and the one C library call
(confluent-kafka's ``list_topics``) runs in eventlet's OS thread pool.
"""

import os
import socket
import sqlite3
import subprocess
import time
import types
from functools import lru_cache
from importlib import metadata

import eventlet
from eventlet import tpool
from nameko import config
from nameko.amqp.consume import Consumer as AmqpConsumer
from nameko.extensions import DependencyProvider
from nameko.rpc import ClusterRpc

from common import probes
from common.logging import LogContext
from common.rpc import ServiceRpc, TimedClient, rpc
from common.tracing import Tracing

UP, DOWN = probes.UP, probes.DOWN
DEFAULT_TIMEOUT = 2.0
# Every Nameko service the system runs (docs/architecture.md "Processes"); HEALTH_SERVICES overrides.
SERVICES = ("accounts", "products", "inventory", "orders", "notifications", "webhooks", "payments", "kafka_bridge")
PROJECT = "product-order-service"


def _ping(self):
    return "pong"


class Readiness(DependencyProvider):
    """Can this container work? Its report (``report()``; ``/health/ready`` on the process's probe port) has:

    - ``broker``: every AMQP consumer of the container is consuming (connected, subscribed, not stopping);
    - the checks its other extensions declare with ``readiness_checks(timeout) -> {name: check}``: ``database``
      (``common.db.Database``: ``SELECT 1`` on a connection of its own), ``kafka`` (the bridge's producer),
      ``payment_provider`` (payments' gRPC client), ``cache`` (``common.cache`` on Redis).

    ``optional`` names are reported, never required (default ``cache``: every cache falls back to its source).
    ``required_once`` names are required until the container has been ready once, then reported only: the gateway
    declares the broker and its cache so, because they are shared by every replica and it answers their outages
    itself (docs/operations.md "Health"). Each check runs under ``HEALTH_CHECK_TIMEOUT``.
    """

    def __init__(self, optional=("cache",), required_once=()):
        self.optional, self.required_once = tuple(optional), tuple(required_once)

    def setup(self):
        self.timeout = float(config.get("HEALTH_CHECK_TIMEOUT") or DEFAULT_TIMEOUT)
        self.server = probes.from_config()
        self.was_ready = False

    def start(self):
        if self.server is not None:
            self.server.attach(self)

    def stop(self):
        if self.server is not None:
            self.server.detach(self)

    kill = stop

    @property
    def service_name(self):
        return self.container.service_name

    def checks(self):
        checks = {"broker": lambda: check_consumers(self.container)}
        for extension in self.container.extensions:
            declared = getattr(extension, "readiness_checks", None)
            if declared is not None:
                checks.update(declared(self.timeout))
        return checks

    def report(self):
        optional = self.optional + (self.required_once if self.was_ready else ())
        ready, checks = run_checks(self.checks(), self.timeout, optional=optional)
        self.was_ready = self.was_ready or ready
        return {"status": UP if ready else DOWN, "checks": checks}

    def get_dependency(self, worker_ctx):
        return self


def check_consumers(container):
    consumers = {id(extension.consumer): extension.consumer for extension in container.extensions
                 if isinstance(getattr(extension, "consumer", None), AmqpConsumer)}
    if not consumers:
        raise ConnectionError("no AMQP consumer")
    idle = [consumer for consumer in consumers.values() if not consuming(consumer)]
    if idle:
        queues = sorted(queue.name for consumer in idle for queue in consumer.queues or ())
        raise ConnectionError(f"{len(idle)} of {len(consumers)} consumer(s) not consuming: {', '.join(queues)}")
    return f"{len(consumers)} consumer(s)"


def consuming(consumer):
    """``common.amqp.Drains`` knows; a consumer of nameko's own is trusted once it has connected."""
    state = getattr(consumer, "consuming", None)
    return consumer.ready.is_set() and not consumer.should_stop if state is None else state


class Operational:
    """Mixin every Nameko service inherits: the ``ping`` RPC that readiness calls, its own ``Readiness`` (its
    probes), and JSON-log context.

    ``ping`` is attached to each service class (one with a ``name``), not declared here: ``nameko run module``
    runs every class with entrypoints it finds in the module, and this mixin, imported there, must not be one.
    """

    log_context = LogContext()
    tracing = Tracing()
    readiness = Readiness()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and "ping" not in cls.__dict__:
            cls.ping = rpc(_copy(_ping, f"{cls.__qualname__}.ping"))


def _copy(function, qualname):
    """A fresh function object per service: nameko keeps a function's entrypoints on the function itself."""
    copy = types.FunctionType(function.__code__, function.__globals__, "ping", function.__defaults__,
                              function.__closure__)
    copy.__qualname__ = qualname
    return copy


def run_checks(checks, timeout=DEFAULT_TIMEOUT, optional=()):
    """``optional``: names reported but not needed for readiness (a read replica: reads fall back to the primary)."""
    pool = eventlet.GreenPool(max(1, len(checks)))
    results = dict(zip(checks, pool.imap(lambda check: timed(check, timeout), checks.values()), strict=True))
    for name in optional:
        if name in results:
            results[name]["optional"] = True
    return all(result["status"] == UP for name, result in results.items() if name not in optional), results


def timed(check, timeout):
    started = time.perf_counter()
    result = {"status": UP}
    try:
        with eventlet.Timeout(timeout, TimeoutError(f"no answer within {timeout:g}s")):
            detail = check()
        if isinstance(detail, dict):
            result.update(detail)
        elif detail:
            result["detail"] = detail
    except Exception as exc:  # a readiness report names the failure instead of failing itself
        result = {"status": DOWN, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_broker(amqp_uri, timeout=DEFAULT_TIMEOUT):
    from kombu import Connection

    with Connection(amqp_uri, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=0)  # one attempt: a readiness probe reports, it doesn't retry
    return None


@lru_cache(maxsize=32)
def _engine(uri, timeout):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": int(max(1, timeout))})


def check_database(uri, timeout=DEFAULT_TIMEOUT):
    from sqlalchemy import make_url, text

    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        return _check_sqlite(url.database)
    with _engine(uri, timeout).connect() as connection:
        connection.execute(text("SELECT 1"))
    return None


def check_replica(primary_uri, replica_uri, max_lag, timeout=DEFAULT_TIMEOUT):
    """A read replica's state as a probe sees it: caught up with the primary, or its ``Seconds_Behind_Master``
    (when the account may read ``SHOW SLAVE STATUS``); DOWN when unreachable, behind with replication stopped,
    or lagging more than ``max_lag`` (then the services read from the primary)."""
    from sqlalchemy import text

    from common.replicas import reached

    with _engine(replica_uri, timeout).connect() as connection:
        applied = connection.execute(text("SELECT @@gtid_slave_pos")).scalar()
        try:
            status = connection.execute(text("SHOW SLAVE STATUS")).mappings().first()
        except Exception:  # noqa: BLE001 -- no REPLICATION CLIENT privilege: the GTIDs still tell
            status = None
    with _engine(primary_uri, timeout).connect() as connection:
        written = connection.execute(text("SELECT @@gtid_binlog_pos")).scalar()
    if reached(applied, written):
        return {"lag_seconds": 0.0, "detail": "caught up"}
    lag = status.get("Seconds_Behind_Master") if status else None
    if lag is None:
        return {"status": DOWN, "lag_seconds": None, "error": f"behind the primary ({applied} < {written}), "
                                                               "replication not running"}
    if lag > max_lag:
        return {"status": DOWN, "lag_seconds": float(lag), "error": f"lag above {max_lag:g}s"}
    return {"lag_seconds": float(lag), "detail": "replicating"}


def _check_sqlite(path):
    # Opened read-only: a readiness probe must not create an empty database where the real one is missing.
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"no database file at {path}")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    try:
        connection.execute("SELECT 1").fetchone()
    finally:
        connection.close()


def check_cache(redis_uri, timeout=DEFAULT_TIMEOUT):
    if not redis_uri:
        return "in-process"
    import redis

    client = redis.Redis.from_url(redis_uri, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return None


def services_to_check(setting):
    """``HEALTH_SERVICES`` as a list or a comma-separated string; every service by default."""
    if isinstance(setting, str):
        setting = [name.strip() for name in setting.split(",") if name.strip()]
    return list(setting or SERVICES)


class ServicePing(ServiceRpc):
    """Injects ``ping(service)``: the service's answer to its ``ping`` RPC, through the same client every service
    calls with (``common.rpc``): one reply queue, a deadline within ``HEALTH_CHECK_TIMEOUT``, a service that does
    not answer is ``DependencyUnavailable``."""

    def __init__(self, **options):
        super().__init__(None, **options)  # the target is named per call

    def setup(self):
        super().setup()
        # a little shorter than the check's own timeout, so the answer names the service that did not answer
        self.timeout = float(config.get("HEALTH_CHECK_TIMEOUT") or DEFAULT_TIMEOUT) * 0.9
        self.publisher.expiration = self.timeout  # a ping nobody consumes expires instead of piling up

    def get_dependency(self, worker_ctx):
        cluster = ClusterRpc.get_dependency(self, worker_ctx)

        def ping(service):
            return TimedClient(lambda: getattr(cluster, service), self.timeout, self.reply_listener, {}).ping()

        return ping


def check_service(ping, service):
    answer = ping(service)
    if answer != "pong":
        raise RuntimeError(f"unexpected answer {answer!r}")


def check_kafka(bootstrap_servers, timeout=DEFAULT_TIMEOUT):
    if not bootstrap_servers:
        raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set")
    # librdkafka's own timeout, a little shorter than the check's, so its error names the cause
    return tpool.execute(_list_topics, bootstrap_servers, timeout * 0.8)


def _list_topics(bootstrap_servers, timeout):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": int(timeout * 1000),
                         "logger": _quiet_kafka_logger})
    metadata_ = admin.list_topics(timeout=timeout)
    return f"{len(metadata_.brokers)} broker(s), {len(metadata_.topics)} topic(s)"


class _QuietKafkaLogger:
    """librdkafka logs every refused connection; readiness reports the failure itself."""

    def log(self, *args, **kwargs):
        pass


_quiet_kafka_logger = _QuietKafkaLogger()


def check_grpc(address, timeout=DEFAULT_TIMEOUT):
    """A gRPC channel is ready once the HTTP/2 connection is up: send the preface, wait for the server's SETTINGS."""
    import h2.config
    import h2.connection
    import h2.events

    if not address:
        raise RuntimeError("PAYMENT_PROVIDER_ADDRESS is not set")
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        while True:
            data = sock.recv(65535)
            if not data:
                raise ConnectionError("connection closed before HTTP/2 SETTINGS")
            if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in connection.receive_data(data)):
                connection.close_connection()
                sock.sendall(connection.data_to_send())
                return None


def version():
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def git_sha():
    """``GIT_SHA`` (set by the image build), else the checkout's HEAD, else "unknown"; read once per process."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
        return sha or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def info(environment):
    return {"name": PROJECT, "version": version(), "environment": environment, "git_sha": git_sha()}
