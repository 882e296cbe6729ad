"""common.db: the engine each service gets — a pool as large as the workers that use it, no TLS over loopback."""

import pytest
from nameko.testing.services import dummy
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase

from common.db import SPARE_CONNECTIONS, Database, engine_options


class Base(DeclarativeBase):
    pass


class Service:
    name = "dbcheck"
    db = Database(Base)

    @dummy
    def noop(self):
        pass


@pytest.mark.parametrize("uri", [
    "mysql+pymysql://root@127.0.0.1:3306/pos?charset=utf8mb4",
    "mysql+pymysql://root@localhost/pos",
    "mysql+pymysql://root@[::1]/pos",
])
def test_loopback_mysql_connects_without_tls(uri):
    assert engine_options(uri)["connect_args"] == {"ssl_disabled": True}


@pytest.mark.parametrize("uri", [
    "mysql+pymysql://app@db.internal/pos",  # PyMySQL's default ("preferred" TLS) stays
    "mysql+pymysql://app@127.0.0.1/pos?ssl_ca=/etc/ssl/ca.pem",  # TLS asked for by the URI
])
def test_remote_or_tls_uris_keep_their_tls(uri):
    assert "connect_args" not in engine_options(uri)


def test_the_pool_holds_every_worker_and_the_relay(db_uris, container_factory):
    uri = db_uris["orders:Base"]
    if not uri.startswith("mysql"):
        pytest.skip("SQLite connections are files: no pool size or TLS to check")
    config = {"DB_URIS": {"dbcheck:Base": uri}, "max_workers": 7, "AMQP_URI": "memory://"}
    container = container_factory(Service, config)
    provider = next(dep for dep in container.extensions if isinstance(dep, Database))
    provider.setup()
    try:
        with provider.engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
            assert connection.connection.dbapi_connection.ssl is False  # no SSL context was built for it
        assert provider.engine.pool.size() == 7 + SPARE_CONNECTIONS
    finally:
        provider.engine.dispose()
