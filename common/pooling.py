"""How the services' connection pools take connections back and hand them out again, with two round trips fewer.

SQLAlchemy's defaults cost two round trips on almost every transaction (the rollbacks alone were a fifth of the SQL
statements of an order):
- it rolls back every connection it takes back, even one whose transaction has just committed;
- ``pool_pre_ping`` pings the server on every checkout, even of a connection used a millisecond ago.

Here a connection is rolled back on return only when it may hold a transaction: one began since its checkout and
did not end (or its end failed), or nothing said it ended (used below SQLAlchemy, or a fresh connection). And a
connection is pinged on checkout only after it sat unused for ``PING_AFTER_IDLE_SECONDS``. A connection that died
sooner fails its first statement; SQLAlchemy then sees the disconnect, drops every connection of the pool that was
open before it, and the caller's retry (RPC deadline, redelivered event) gets fresh ones. A server that goes away
takes longer than that second to come back, so the connections found after it are all pinged.
"""

import time

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError

PING_AFTER_IDLE_SECONDS = 1.0


def tune_pool(engine, ping=True):
    """Installs both behaviours on ``engine``, whose pool must be created with ``pool_reset_on_return=None`` (and
    without ``pool_pre_ping``); ``ping=False`` for a database with no server (SQLite)."""

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection, record, _proxy):
        record.info["settled"] = False
        returned_at = record.info.get("returned_at")
        if ping and returned_at is not None and time.monotonic() - returned_at > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError(f"idle connection is gone: {type(exc).__name__}") from exc

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    def settle(connection, settled):
        if connection is not None and not connection.invalidated:  # an invalidated one goes back to no pool
            connection.info["settled"] = settled

    event.listen(engine, "begin", lambda connection: settle(connection, False))
    # the events come before the COMMIT or ROLLBACK is sent: one that fails is unsettled again by handle_error
    event.listen(engine, "commit", lambda connection: settle(connection, True))
    event.listen(engine, "rollback", lambda connection: settle(connection, True))
    event.listen(engine, "handle_error", lambda context: settle(context.connection, False))

    @event.listens_for(engine, "reset")
    def returned(dbapi_connection, record, state):
        if state.terminate_only or state.transaction_was_reset or record.info.get("settled"):
            return
        dbapi_connection.rollback()
