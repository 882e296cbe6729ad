"""Alembic, once for every service: ``python -m common.migrations --config config/dev.yml products inventory``.

Each service keeps its revisions in ``services/<name>/migrations`` and its own version table
(``alembic_version_<name>``), so services can share one database in a test and still never touch each other.
"""

import argparse
import sys
from importlib import import_module
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from nameko import config

from common.crypto import Keyring, stored_key_id
from common.db import make_engine

SERVICES_WITH_DATABASE = ("accounts", "products", "inventory", "orders", "notifications", "webhooks")


def database_uri(service):
    return config["DB_URIS"][f"{service}:Base"]


def alembic_config(service, uri):
    package = import_module(f"services.{service}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(package.__file__).parent / "migrations"))
    cfg.attributes["service"] = service
    cfg.attributes["url"] = uri
    return cfg


def upgrade(service, uri=None, revision="head"):
    command.upgrade(alembic_config(service, uri or database_uri(service)), revision)


def run_env(target_metadata, unmanaged_prefixes=()):
    """Body of every service's ``migrations/env.py``; tables named ``unmanaged_prefixes*`` are the migrations' own
    (SQLite FTS5 tables and their shadow tables), which autogenerate must not propose to drop."""
    service = context.config.attributes["service"]
    engine = make_engine(context.config.attributes["url"])

    def include_object(obj, name, type_, reflected, compare_to):
        return not (type_ == "table" and reflected and compare_to is None and name.startswith(unmanaged_prefixes))

    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata,
            version_table=f"alembic_version_{service}", render_as_batch=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    if context.config.attributes.get("rewrote_plain_rows") and engine.dialect.name == "sqlite":
        squeeze_out_old_pages(engine)
    engine.dispose()


def squeeze_out_old_pages(engine):
    """After plain values were rewritten: SQLite keeps the old pages in its free list and write-ahead log until
    they are reused, so the file is rebuilt and the log emptied (MySQL's undo log purges by itself)."""
    connection = engine.raw_connection()
    try:
        connection.driver_connection.execute("VACUUM")
        connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def encrypt_rows(table_name, names, primary_key="id", batch=500, derived=None, reads=()):
    """Data migration: encrypt the plain values of columns ``names`` in place (purpose ``table.column``), in
    batches by primary key; values already encrypted are left alone, so a rerun is harmless. ``derived(keyring,
    plain_row)`` may return more columns to set from the plain values (a blind index), also seeing ``reads``."""
    _rewrite(table_name, names, primary_key, batch, derived, reads,
             lambda keyring, value, purpose: value if stored_key_id(value) else keyring.encrypt(value, purpose))


def decrypt_rows(table_name, names, primary_key="id", batch=500):
    """The downgrade of ``encrypt_rows``."""
    _rewrite(table_name, names, primary_key, batch, None, (),
             lambda keyring, value, purpose: keyring.decrypt(value, purpose) if stored_key_id(value) else value)


def _rewrite(table_name, names, primary_key, batch, derived, reads, convert):
    keyring, connection = Keyring.from_config(), op.get_bind()
    context.config.attributes["rewrote_plain_rows"] = True
    tbl = sa.table(table_name, sa.column(primary_key), *(sa.column(name, sa.Text) for name in [*names, *reads]))
    last = None
    while True:
        query = sa.select(tbl).order_by(tbl.c[primary_key]).limit(batch)
        rows = connection.execute(query if last is None else query.where(tbl.c[primary_key] > last)).mappings().all()
        for row in rows:
            values = {name: None if row[name] is None else convert(keyring, row[name], f"{table_name}.{name}")
                      for name in names}
            extra = derived(keyring, row) if derived else {}
            extra_columns = [sa.column(name) for name in extra]
            target = sa.table(table_name, sa.column(primary_key), *(sa.column(name) for name in names),
                              *extra_columns)
            connection.execute(target.update().where(target.c[primary_key] == row[primary_key])
                               .values(**values, **extra))
        if len(rows) < batch:
            return
        last = rows[-1][primary_key]


def main(argv=None):
    from nameko.cli.utils.config import setup_config

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=argparse.FileType())
    parser.add_argument("services", nargs="*", default=None)
    args = parser.parse_args(argv)
    setup_config(args.config)
    available = [s for s in SERVICES_WITH_DATABASE if f"{s}:Base" in config.get("DB_URIS", {})]
    for service in args.services or available:
        upgrade(service)
        print(f"migrated {service}", file=sys.stderr)


if __name__ == "__main__":
    main()
