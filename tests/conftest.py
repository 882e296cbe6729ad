"""Fixtures shared by the whole suite: real RabbitMQ (a vhost per test), SQLite and MariaDB, Redis.

Any test that asks for ``db_uris`` runs twice, once on SQLite and once on MariaDB; set
``POS_TEST_DATABASES=sqlite`` (or ``mysql``) to run one. ``service_config`` gives a complete Nameko config with
every service's schema migrated.
"""

import eventlet

eventlet.monkey_patch()  # noqa: E402  -- must precede every other import, or the suite hangs


def _green_ssl_for_early_urllib3():
    # A pytest plugin (schemathesis) imports urllib3 before this file runs, so urllib3 keeps the unpatched
    # SSLContext, whose options setter then recurses forever into eventlet's subclass (boto3 clients fail).
    import ssl
    import sys

    for name in ("urllib3.util.ssl_", "requests.packages.urllib3.util.ssl_"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "SSLContext", None) is not ssl.SSLContext:
            module.SSLContext = ssl.SSLContext


_green_ssl_for_early_urllib3()

import os  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402

import pymysql  # noqa: E402
import pytest  # noqa: E402
from nameko import config  # noqa: E402

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")

MYSQL = dict(host=os.environ.get("POS_TEST_MYSQL_HOST", "127.0.0.1"),
             port=int(os.environ.get("POS_TEST_MYSQL_PORT", "3306")),
             user=os.environ.get("POS_TEST_MYSQL_USER", "root"),
             password=os.environ.get("POS_TEST_MYSQL_PASSWORD", ""))
REDIS_URI = os.environ.get("POS_TEST_REDIS_URI", "redis://127.0.0.1:6379/15")
DATABASE_SERVICES = ("accounts", "products", "inventory", "orders", "notifications", "webhooks")


def database_backends():
    wanted = os.environ.get("POS_TEST_DATABASES", "sqlite,mysql")
    return [name.strip() for name in wanted.split(",") if name.strip()]


def pytest_generate_tests(metafunc):
    if "db_backend" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", database_backends(), indirect=True)


@pytest.fixture
def db_backend(request):
    return request.param


@pytest.fixture
def broker_link(rabbit_config, rabbit_uri):
    """The test's vhost on the shared RabbitMQ through a link the test can cut (tests.netcut): ``(link, uri)``."""
    from tests.netcut import link_to

    link, uri = link_to(rabbit_uri)
    yield link, uri
    link.close()


def mysql_admin():
    return pymysql.connect(autocommit=True, **MYSQL)


@pytest.fixture
def db_uris(db_backend, tmp_path):
    """One database per service, fresh for each test, on the backend under test."""
    if db_backend == "sqlite":
        yield {f"{name}:Base": f"sqlite:///{tmp_path}/{name}.db" for name in DATABASE_SERVICES}
        return
    prefix = f"pos_t_{uuid.uuid4().hex[:10]}"
    names = {name: f"{prefix}_{name}" for name in DATABASE_SERVICES}
    admin = mysql_admin()
    with admin.cursor() as cursor:
        for db in names.values():
            cursor.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    auth = MYSQL["user"] + (f":{MYSQL['password']}" if MYSQL["password"] else "")
    yield {f"{name}:Base": f"mysql+pymysql://{auth}@{MYSQL['host']}:{MYSQL['port']}/{db}?charset=utf8mb4"
           for name, db in names.items()}
    with admin.cursor() as cursor:
        for db in names.values():
            cursor.execute(f"DROP DATABASE IF EXISTS `{db}`")
    admin.close()


@pytest.fixture
def redis_uri():
    import redis

    client = redis.Redis.from_url(REDIS_URI)
    client.flushdb()
    yield REDIS_URI
    client.flushdb()


# The data keys of every test (common.crypto): migrations and engines outside a container read them from config.
DATA_KEYS = {"DATA_ENCRYPTION_KEYS": "Ix1eRLD_ERkO0KEDhybMPhrz6ubxZrvhcLkyLOLqtiY=",
             "DATA_INDEX_KEY": "test-email-index-key-0123456789abcdef"}


@pytest.fixture(autouse=True)
def data_keys():
    with config.patch(DATA_KEYS):
        yield


BASE_CONFIG = {
    "ENVIRONMENT": "test",
    "CACHE_TTL_SECONDS": 600,
    "JWT_SECRET": "test-secret-key-that-is-long-enough-for-hs256",
    "JWT_TTL_SECONDS": 3600,
    **DATA_KEYS,
    "ADMIN_EMAIL": "admin@example.com",
    "ADMIN_PASSWORD": "admin-password-1",
    "OUTBOX_POLL_INTERVAL": 0.2,
    "KAFKA_TOPIC_PREFIX": "pos.",
    "LOW_STOCK_THRESHOLD": 5,
    "serializer": "json",
}


@pytest.fixture
def service_config(rabbit_config, db_uris):
    """Complete config for running services against the real broker and a migrated database."""
    from common.migrations import upgrade

    with config.patch({**BASE_CONFIG, "DB_URIS": db_uris}):
        for service in DATABASE_SERVICES:
            try:
                upgrade(service)
            except ModuleNotFoundError:
                pass  # a service not written yet
        yield config


@pytest.fixture(scope="session")
def mariadb_replication():
    """A MariaDB primary with binary logging and a GTID replica of it, started once (tests/replication.py)."""
    import shutil

    from tests.replication import start_replication, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    replication, root = start_replication()
    yield replication
    replication.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def replicated_databases(mariadb_replication):
    """``make(names)`` -> ``{name: (primary_uri, replica_uri)}``: fresh databases on the primary, replicated.
    Afterwards the replica is running, replicating and caught up again, whatever the test did to it."""
    made = []

    def make(names):
        uris = mariadb_replication.databases(names)
        made.append(uris)
        return uris

    yield make
    mariadb_replication.restore()
    for uris in made:
        mariadb_replication.drop(uris)
