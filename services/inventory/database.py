"""``common.db.Database`` plus a green lock around SQLite write transactions (a no-op on MySQL).

Why: on SQLite every transaction starts with ``BEGIN IMMEDIATE`` (common/db.py). If a greenlet yields while
holding that write lock (the outbox relay publishes to RabbitMQ inside its transaction), the next greenlet's
``BEGIN IMMEDIATE`` waits in SQLite's C busy handler, which blocks the whole eventlet hub, so the holder never
resumes: the process stalls for ``busy_timeout`` and fails. Queueing writers of one engine on a green lock
first makes them yield to each other instead. This belongs in ``common.db._tune_sqlite``; it lives here until
it moves there.
"""

import threading

from nameko_sqlalchemy import Database as NamekoDatabase
from sqlalchemy import create_engine, event

from common.db import Database, _tune_sqlite, engine_options

LOCK_KEY = "green_writer_lock"
# Past this, fall back to SQLite's own busy handling rather than wait forever on a lock someone leaked.
LOCK_TIMEOUT = 30


def serialise_writers(engine):
    lock = threading.Lock()  # green once eventlet has monkey-patched threading

    def take(conn):
        if not conn.info.get(LOCK_KEY):
            conn.info[LOCK_KEY] = lock.acquire(timeout=LOCK_TIMEOUT)

    def give_back(info):
        if info.pop(LOCK_KEY, False):
            lock.release()

    event.listen(engine, "begin", take)  # must be registered before common.db's BEGIN IMMEDIATE listener
    event.listen(engine, "commit", lambda conn: give_back(conn.info))
    event.listen(engine, "rollback", lambda conn: give_back(conn.info))
    # A BEGIN that failed, or a connection dropped mid-transaction, ends without commit or rollback.
    event.listen(engine.pool, "checkin", lambda _dbapi, record: give_back(record.info))


class SerialisedDatabase(Database):
    def setup(self):
        # Engine events ignore ``insert=True``, so the lock's listener must exist before BEGIN IMMEDIATE's.
        NamekoDatabase.setup(self)
        self.engine.dispose()
        self.engine = create_engine(self.db_uri, **{**engine_options(self.db_uri), **self.engine_options})
        if self.db_uri.startswith("sqlite"):
            serialise_writers(self.engine)
            _tune_sqlite(self.engine)
        self.Session.configure(bind=self.engine)
