"""The database session every service declares, and the engine settings that make SQLite and MySQL behave."""

import functools
import logging
import sqlite3
import time

import eventlet
from nameko_sqlalchemy import Database as NamekoDatabase
from nameko_sqlalchemy.database import DatabaseWrapper, Session
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.sql.elements import TextClause

from common import replicas
from common.crypto import data_keyring
from common.events import AlreadyHandled, can_record, record_delivery
from common.health import check_database
from common.metrics import count_read, time_statements
from common.pooling import tune_pool
from common.tracing import trace_engine

log = logging.getLogger(__name__)

SQLITE_LOCK_WAIT_SECONDS = 30
STOP_WAIT_SECONDS = 10
DEFAULT_MAX_WORKERS = 10
# Connections a process holds besides its workers': the outbox relay's session and its advisory-lock connection,
# a metrics scrape, a migration check.
SPARE_CONNECTIONS = 4
LOOPBACK_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}
SSL_OPTIONS = ("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_check_hostname",
               "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")


def engine_options(uri, max_workers=DEFAULT_MAX_WORKERS):
    if uri.startswith("sqlite"):
        # Workers are greenlets: connections move between them, never across OS threads. timeout=0 because
        # SQLite's own lock wait is a blocking C call that would freeze every greenlet of the process.
        return {"connect_args": {"check_same_thread": False, "timeout": 0}, "pool_reset_on_return": None}
    # A pool smaller than the workers that use it at once opens and closes an overflow connection per checkout
    # under load (a TCP connect, authentication and, with PyMySQL, an SSL context each time).
    # Returned connections are rolled back and idle ones pinged by common.pooling, only where needed.
    options = {"pool_reset_on_return": None, "pool_recycle": 1800, "pool_size": max_workers + SPARE_CONNECTIONS,
               "max_overflow": 10}
    if _plain_loopback(uri):
        options["connect_args"] = {"ssl_disabled": True}
    return options


def _plain_loopback(uri):
    """A MySQL URI on this host with no TLS options of its own.

    PyMySQL's default is "preferred" TLS, for which it builds a fresh SSL context (loading the system CA store,
    ~10 ms of CPU) on every connect, even when the server offers no TLS. Over loopback TLS protects nothing, so
    it is off; a URI naming a remote host keeps PyMySQL's default, and ``?ssl_ca=...`` makes TLS required.
    """
    url = make_url(uri)
    if not url.drivername.startswith("mysql") or url.host not in LOOPBACK_HOSTS:
        return False
    return not any(option in url.query for option in SSL_OPTIONS)


def _tune_sqlite(engine):
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let pysqlite leave transactions to us so BEGIN IMMEDIATE really takes the write lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")  # erased and re-encrypted values leave no copy in free pages
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


def make_engine(uri, max_workers=DEFAULT_MAX_WORKERS, **extra):
    engine = create_engine(uri, **{**engine_options(uri, max_workers), **extra})
    tune_pool(engine, ping=not uri.startswith("sqlite"))
    if uri.startswith("sqlite"):
        _tune_sqlite(engine)
    return engine


class Database(NamekoDatabase):
    """nameko-sqlalchemy's provider with engines tuned per dialect (see ``make_engine``), and read replicas.

    ``handled_events``: the service's ``ProcessedEvent`` model. With it, each event handler's worker records its
    event in the first transaction it begins (``common.events.DomainEventHandler`` says which event that is).

    Replicas (``common.replicas``): the workers of an entrypoint declared ``@rpc(read_only=True)`` get sessions on
    a fit replica that has the caller's last write (else on the primary), and may not write; every other worker's
    sessions are on the primary, and its commits record the primary's position for the caller. Without
    ``DB_REPLICA_URIS`` for the service (SQLite, dev) every session is on the primary.
    """

    def __init__(self, declarative_base, handled_events=None, **options):
        super().__init__(declarative_base, **options)
        self.handled_events = handled_events
        self.replicas = None
        self.checks = None  # the greenlet that checks the replicas
        self.users = []  # events of providers that still use it while the container stops (keep_open_until)

    def setup(self):
        super().setup()
        self.engine.dispose()
        service = self.container.service_name
        self.engine = make_engine(self.db_uri, self.container.max_workers, **self.engine_options)
        self.Session.configure(bind=self.engine)
        time_statements(self.engine, service)
        trace_engine(self.engine, service)
        # refuses to start (common.crypto.KeyringError) when a data key is missing or cannot read a stored row
        self.keyring = data_keyring(self.engine, self.declarative_base.metadata)
        self.ReadSession = sessionmaker(bind=self.engine, class_=Session, **self.session_options)
        guard_reads(self.ReadSession)
        uris = replicas.replica_uris(f"{service}:{self.declarative_base.__name__}")
        if uris:
            self.replicas = replicas.ReplicaSet(service, self.engine, [
                replicas.Replica(uri, self._replica_engine(uri), self._check_engine(uri)) for uri in uris],
                *replicas.settings())
            event.listen(self.Session, "do_orm_execute", note_write)
            event.listen(self.Session, "after_flush", lambda session, _context: session.info.update(wrote=True))
            event.listen(self.Session, "after_commit", self._record_position)

    def _replica_engine(self, uri):
        options = {**engine_options(uri, self.container.max_workers), **self.engine_options}
        options["connect_args"] = {**options.get("connect_args", {}),
                                   "connect_timeout": replicas.CONNECT_TIMEOUT_SECONDS}
        engine = create_engine(uri, **options)
        tune_pool(engine)
        replicas.read_only_connections(engine)
        time_statements(engine, self.container.service_name)
        trace_engine(engine, self.container.service_name)
        return engine

    @staticmethod
    def _check_engine(uri):
        timeouts = {"connect_timeout": replicas.CONNECT_TIMEOUT_SECONDS, "read_timeout": replicas.CHECK_TIMEOUT_SECONDS,
                    "write_timeout": replicas.CHECK_TIMEOUT_SECONDS}
        return create_engine(uri, pool_size=1, max_overflow=0, pool_recycle=1800,
                             connect_args={**engine_options(uri).get("connect_args", {}), **timeouts})

    def start(self):
        if self.replicas is not None:
            self.replicas.check()  # the first reads already know which replicas are fit
            self.checks = self.container.spawn_managed_thread(self.replicas.run, identifier="db-replica-checks")

    def keep_open_until(self, done):
        """``stop()`` waits for ``done`` (an Event, up to ``STOP_WAIT_SECONDS``) before it closes the engines:
        nameko stops every provider at once, and one may need the database to finish (the outbox's last relay)."""
        self.users.append(done)

    def stop(self):
        self._stop_replicas()
        for done in self.users:
            with eventlet.Timeout(STOP_WAIT_SECONDS, False):
                done.wait()
        super().stop()

    def kill(self):
        self._stop_replicas()
        super().kill()

    def _stop_replicas(self):
        if self.replicas is not None:
            if self.checks is not None:
                self.checks.kill()
            self.replicas.dispose()

    def readiness_checks(self, timeout):
        """For ``common.health.Readiness``: the primary answers ``SELECT 1``, on a connection of its own (a pool
        that busy workers hold is load, not an outage)."""
        return {"database": functools.partial(check_database, self.db_uri, timeout)}

    def replica_report(self):
        return self.replicas.report() if self.replicas is not None else []

    def get_dependency(self, worker_ctx):
        if getattr(worker_ctx.entrypoint, "read_only", False):
            db = ReadWrapper(self, worker_ctx)
            self.dbs[worker_ctx] = db
            return db
        if self.replicas is not None:
            return self._recording_dependency(worker_ctx)
        return self._primary_dependency(worker_ctx)

    def _recording_dependency(self, worker_ctx):
        db = self._primary_dependency(worker_ctx)
        db.Session = functools.partial(db.Session, info={"worker_data": worker_ctx.data})
        return db

    def _record_position(self, session):
        data = session.info.get("worker_data")
        if not session.info.pop("wrote", False) or data is None:
            return
        try:
            with self.engine.connect() as connection:
                position = connection.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar()
        except SQLAlchemyError as exc:  # committed all the same; the caller's next read may just be older
            log.warning("cannot read the primary's position after a write: %r", exc)
            return
        replicas.merge_positions(data, {self.container.service_name: position})

    def _primary_dependency(self, worker_ctx):
        delivery = getattr(worker_ctx.entrypoint, "delivery", None)
        if self.handled_events is None or delivery is None:
            return super().get_dependency(worker_ctx)
        if not event.contains(self.Session, "after_begin", record_first_transaction):
            # on the session factory once, not on every session (an instance listener costs more than the insert)
            event.listen(self.Session, "after_begin", record_first_transaction)
            event.listen(self.Session, "after_commit", first_transaction_committed)
        db = OnceWrapper(self.Session, self.handled_events, *delivery(worker_ctx))
        self.dbs[worker_ctx] = db
        return db


class ReadOnlySession(Exception):
    """A read-only entrypoint tried to write: declare it without ``read_only``."""


def writes(state):
    """Does an ORM execution write? (ORM/Core DML, or a textual statement that starts like one)"""
    if state.is_insert or state.is_update or state.is_delete:
        return True
    return isinstance(state.statement, TextClause) and \
        state.statement.text.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))


def note_write(state):
    if writes(state):
        state.session.info["wrote"] = True


def guard_reads(session_factory):
    def refuse_statement(state):
        if writes(state):
            raise ReadOnlySession("a read-only entrypoint may not write")

    def refuse_flush(session, _context, _instances):
        if session.new or session.dirty or session.deleted:
            raise ReadOnlySession("a read-only entrypoint may not write")

    event.listen(session_factory, "do_orm_execute", refuse_statement)
    event.listen(session_factory, "before_flush", refuse_flush)


class ReadWrapper(DatabaseWrapper):
    """A read-only worker's sessions: on the replica chosen at its first session (or the primary), never writing."""

    def __init__(self, database, worker_ctx):
        super().__init__(self._make_session)
        self.database, self.worker_ctx = database, worker_ctx
        self.bind = None
        self.connection = None

    def _make_session(self, **options):
        if self.bind is None:
            self.bind, target = self._choose()
            count_read(self.database.container.service_name, target)
        return self.database.ReadSession(bind=self.bind, **options)

    def _choose(self):
        replica_set = self.database.replicas
        if replica_set is None:
            return self.database.engine, replicas.PRIMARY
        wanted = replicas.wanted_position(self.worker_ctx.data, self.database.container.service_name)
        self.connection, target = replica_set.choose(wanted)
        return (self.connection or self.database.engine), target

    def close(self):
        super().close()
        if self.connection is not None:
            self.connection.close()


class OnceWrapper(DatabaseWrapper):
    """A worker's sessions whose first transaction also records the event the worker applies."""

    def __init__(self, session_factory, model, event_id, handler):
        super().__init__(session_factory)
        self.model, self.event_id, self.handler = model, event_id, handler
        self.recorded = not can_record(event_id)

    def get_session(self, close_on_exit=False):
        session = super().get_session(close_on_exit)
        if not self.recorded:
            session.info["once"] = self
        return session


def record_first_transaction(session, transaction, connection):
    once = session.info.get("once")
    if once is None or once.recorded or transaction.nested:
        return
    if not record_delivery(connection, once.model, once.event_id, once.handler):
        raise AlreadyHandled(f"event {once.event_id} was applied by {once.handler} before")
    session.info["records_delivery"] = True


def first_transaction_committed(session):
    if session.info.pop("records_delivery", False):
        session.info["once"].recorded = True
