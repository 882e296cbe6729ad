"""Small helpers for tests that wait on asynchronous effects (events, projections, Kafka)."""

from common.timers import wait_for


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value or fail after ``timeout``."""
    value = wait_for(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")
    return value


def stored_text(uri):
    """Every value of every table of the database at ``uri``, read with plain SQL (nothing decrypted), as text."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(uri)
    try:
        with engine.connect() as connection:
            quote = connection.dialect.identifier_preparer.quote
            return "\n".join(repr(tuple(row)) for name in inspect(connection).get_table_names()
                             for row in connection.execute(text(f"SELECT * FROM {quote(name)}")))
    finally:
        engine.dispose()


def stored_bytes(uri):
    """The bytes of a SQLite database's files (the database and its write-ahead log); b"" for any other."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.get_backend_name() != "sqlite":
        return b""
    path = Path(url.database)
    return b"".join(part.read_bytes() for part in (path, path.with_name(path.name + "-wal")) if part.exists())


def assert_not_stored(uris, *secrets):
    """None of ``secrets`` appears in any row (plain SQL) or, for SQLite, anywhere in the files."""
    for uri in uris:
        rows, raw = stored_text(uri).lower(), stored_bytes(uri).lower()
        for secret in secrets:
            assert secret.lower() not in rows, (secret, uri)
            assert secret.lower().encode() not in raw, (secret, uri)
