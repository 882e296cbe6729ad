"""common.pooling on a real MariaDB (and SQLite): no rollback after a commit, no ping of a connection just used,
yet never a transaction left open for the next worker, and a connection that died while idle replaced unseen."""

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from common import pooling
from common.db import make_engine
from tests.conftest import mysql_admin


@pytest.fixture
def engine(db_uris):
    engine = make_engine(db_uris["orders:Base"], pool_size=1, max_overflow=0)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


@pytest.fixture
def mysql_engine(engine):
    if engine.dialect.name != "mysql":
        pytest.skip("SQLite has no server to count rollbacks or pings on")
    return engine


def rollbacks(connection):
    """This server session's ROLLBACKs so far (the SHOW itself starts no transaction)."""
    return int(connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'").one()[1])


def test_a_committed_connection_goes_back_to_the_pool_without_a_rollback(mysql_engine):
    with mysql_engine.connect() as connection:
        connection.execute(text("INSERT INTO probe VALUES (1)"))
        connection.commit()
        before = rollbacks(connection)
        connection.commit()
    with mysql_engine.connect() as connection:  # the same server session: the pool holds one connection
        assert rollbacks(connection) == before


def test_a_transaction_left_open_is_rolled_back_whoever_left_it(mysql_engine):
    with mysql_engine.connect() as connection:
        before = rollbacks(connection)
        connection.commit()
    raw = mysql_engine.raw_connection()  # below SQLAlchemy: nothing tells the pool the read ended
    with raw.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM probe")
    raw.close()
    with mysql_engine.connect() as connection:
        assert rollbacks(connection) == before + 1
        connection.commit()


def test_the_next_worker_sees_writes_made_after_the_last_one_read(engine, db_uris):
    """A snapshot kept open across workers would hide every later write (REPEATABLE READ)."""
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SELECT COUNT(*) FROM probe")
    assert cursor.fetchone()[0] == 0
    cursor.close()
    raw.close()
    other = make_engine(db_uris["orders:Base"])
    with other.begin() as connection:
        connection.execute(text("INSERT INTO probe VALUES (7)"))
    other.dispose()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT COUNT(*) FROM probe")) == 1


def counting_pings(engine, monkeypatch):
    pings = []
    real = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi_connection: pings.append(1) or real(dbapi_connection))
    return pings


def test_only_a_connection_idle_for_a_while_is_pinged(mysql_engine, monkeypatch):
    monkeypatch.setattr(pooling, "PING_AFTER_IDLE_SECONDS", 0.3)
    pings = counting_pings(mysql_engine, monkeypatch)
    for _ in range(5):
        with mysql_engine.connect() as connection:
            connection.scalar(text("SELECT 1"))
    assert pings == []
    time.sleep(0.4)
    with mysql_engine.connect() as connection:
        connection.scalar(text("SELECT 1"))
    assert pings == [1]


def kill_the_pooled_connection(engine):
    with engine.connect() as connection:
        server_id = connection.scalar(text("SELECT CONNECTION_ID()"))
    admin = mysql_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"KILL {int(server_id)}")
    admin.close()
    return server_id


def test_a_connection_that_died_while_idle_is_replaced_before_anyone_uses_it(mysql_engine, monkeypatch):
    monkeypatch.setattr(pooling, "PING_AFTER_IDLE_SECONDS", 0.2)
    killed = kill_the_pooled_connection(mysql_engine)
    time.sleep(0.3)
    with mysql_engine.connect() as connection:
        assert connection.scalar(text("SELECT CONNECTION_ID()")) != killed


def test_a_connection_that_died_just_after_use_fails_once_then_the_pool_is_fresh(mysql_engine, monkeypatch):
    monkeypatch.setattr(pooling, "PING_AFTER_IDLE_SECONDS", 60)
    killed = kill_the_pooled_connection(mysql_engine)
    with pytest.raises(OperationalError), mysql_engine.connect() as connection:
        connection.scalar(text("SELECT 1"))
    with mysql_engine.connect() as connection:
        assert connection.scalar(text("SELECT CONNECTION_ID()")) != killed
