"""The products schema is built by its Alembic migration, on SQLite and MariaDB, and matches the models."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from common.db import make_engine
from services.products.models import Base

ROOT = Path(__file__).resolve().parents[3]


def migrate(uri):
    env = {**os.environ, "PRODUCTS_DB_URI": uri}
    return subprocess.run([sys.executable, "-m", "common.migrations", "--config", "config/dev.yml", "products"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_migrates_an_empty_database_to_the_models(db_uris):
    uri = db_uris["products:Base"]
    for _ in range(2):  # a second run is a no-op
        done = migrate(uri)
        assert done.returncode == 0, done.stderr
        assert "migrated products" in done.stderr

    engine = make_engine(uri)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert {"categories", "products", "outbox", "processed_events", "alembic_version_products"} <= tables
        assert connection.scalar(text("SELECT version_num FROM alembic_version_products")) == "0001"
        differences = compare_metadata(MigrationContext.configure(
            connection, opts={"version_table": "alembic_version_products"}), Base.metadata)
    engine.dispose()
    assert differences == []
