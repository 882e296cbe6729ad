"""The database session every service declares, and the engine settings that make SQLite and MySQL behave."""

import sqlite3
import time

import eventlet
from nameko_sqlalchemy import Database as NamekoDatabase
from sqlalchemy import create_engine, event

SQLITE_LOCK_WAIT_SECONDS = 30


def engine_options(uri):
    if uri.startswith("sqlite"):
        # Workers are greenlets: connections move between them, never across OS threads. timeout=0 because
        # SQLite's own lock wait is a blocking C call that would freeze every greenlet of the process.
        return {"connect_args": {"check_same_thread": False, "timeout": 0}}
    return {"pool_pre_ping": True, "pool_recycle": 1800, "pool_size": 10, "max_overflow": 20}


def _tune_sqlite(engine):
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let pysqlite leave transactions to us so BEGIN IMMEDIATE really takes the write lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # Writers serialise at BEGIN instead of failing on lock upgrade half way through; the wait for the
        # lock yields to other greenlets instead of blocking the hub.
        begin_immediate(conn.connection.dbapi_connection)


def begin_immediate(dbapi_connection):
    deadline = time.monotonic() + SQLITE_LOCK_WAIT_SECONDS
    delay = 0.001
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        eventlet.sleep(delay)
        delay = min(delay * 2, 0.05)


def make_engine(uri, **extra):
    engine = create_engine(uri, **{**engine_options(uri), **extra})
    if uri.startswith("sqlite"):
        _tune_sqlite(engine)
    return engine


class Database(NamekoDatabase):
    """nameko-sqlalchemy's provider with engines tuned per dialect (see ``make_engine``)."""

    def setup(self):
        super().setup()
        self.engine.dispose()
        self.engine = make_engine(self.db_uri, **self.engine_options)
        self.Session.configure(bind=self.engine)
