"""The products schema is built by its Alembic migration, on SQLite and MariaDB, and matches the models."""

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from common.db import make_engine
from common.migrations import alembic_config
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
        assert connection.scalar(text("SELECT version_num FROM alembic_version_products")) == "0002"
        differences = compare_metadata(MigrationContext.configure(
            connection, opts={"version_table": "alembic_version_products"}), Base.metadata)
    engine.dispose()
    assert differences == []


def index_names(engine):
    with engine.connect() as connection:
        return {index["name"] for index in inspect(connection).get_indexes("products")}


def test_the_search_indexes_come_and_go_with_rows_in_the_table(db_uris):
    uri = db_uris["products:Base"]
    cfg = alembic_config("products", uri)
    command.upgrade(cfg, "0001")
    engine = make_engine(uri)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO products (sku, name, price, currency, available, stock_version, created_at, updated_at) "
            "VALUES ('SKU-1', 'Lamp', 9.50, 'USD', 3, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    new = {"ix_products_category_live_name", "ix_products_category_live_price", "ix_products_category_live_created"}
    try:
        command.upgrade(cfg, "head")
        assert new <= index_names(engine)
        assert not {"ix_products_available", "ix_products_category_price"} & index_names(engine)
        command.downgrade(cfg, "0001")
        assert {"ix_products_available", "ix_products_category_price"} <= index_names(engine)
        assert not new & index_names(engine)
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT name FROM products WHERE sku = 'SKU-1'")) == "Lamp"
    finally:
        engine.dispose()
