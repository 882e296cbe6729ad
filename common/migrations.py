"""Alembic, once for every service: ``python -m common.migrations --config config/dev.yml products inventory``.

Each service keeps its revisions in ``services/<name>/migrations`` and its own version table
(``alembic_version_<name>``), so services can share one database in a test and still never touch each other.
"""

import argparse
import sys
from importlib import import_module
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from nameko import config

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
    engine.dispose()


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
