"""The database session every service declares, and the engine settings that make SQLite and MySQL behave."""

from nameko_sqlalchemy import Database as NamekoDatabase
from sqlalchemy import create_engine, event


def engine_options(uri):
    if uri.startswith("sqlite"):
        # Workers are greenlets: the connection is shared across them, never across OS threads.
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True, "pool_recycle": 1800, "pool_size": 10, "max_overflow": 20}


def _tune_sqlite(engine):
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let pysqlite leave transactions to us so BEGIN IMMEDIATE really takes the write lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # Writers serialise at BEGIN instead of failing on lock upgrade half way through.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
