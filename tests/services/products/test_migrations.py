"""The products schema is built by its Alembic migration, on SQLite and MariaDB, and matches the models."""

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from common.db import make_engine
from common.migrations import alembic_config
from services.products.models import TEXT_INDEX, TEXT_TABLE, Base, search_products

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
        head = ScriptDirectory.from_config(alembic_config("products", uri)).get_current_head()
        assert connection.scalar(text("SELECT version_num FROM alembic_version_products")) == head
        differences = compare_metadata(MigrationContext.configure(connection, opts={
            "version_table": "alembic_version_products",
            "include_object": alembic_can_compare(connection.dialect.name)}), Base.metadata)
        assert text_index(connection) == TEXT_INDEX_OBJECTS[connection.dialect.name]
    engine.dispose()
    assert differences == []


# What revision 0003 builds; on SQLite the FTS5 table also brings its shadow tables.
TEXT_INDEX_OBJECTS = {
    "mysql": {(TEXT_INDEX, "FULLTEXT name,description,sku")},
    "sqlite": {("table", TEXT_TABLE), ("trigger", "products_fts_insert"), ("trigger", "products_fts_delete"),
               ("trigger", "products_fts_update")},
}


def alembic_can_compare(dialect):
    """Alembic knows neither FTS5 tables nor ``Index.ddl_if``: on SQLite they are checked by ``text_index``."""
    def include_object(object_, name, type_, reflected, compare_to):
        if dialect != "sqlite":
            return True
        return name != TEXT_INDEX and not (type_ == "table" and name.startswith(TEXT_TABLE))
    return include_object


def text_index(connection):
    if connection.dialect.name == "sqlite":
        rows = connection.execute(text(
            "SELECT type, name FROM sqlite_master WHERE (type = 'table' AND name = :table) "
            "OR (type = 'trigger' AND tbl_name = 'products')"), {"table": TEXT_TABLE})
        return {tuple(row) for row in rows}
    rows = connection.execute(text(
        "SELECT index_name, index_type, GROUP_CONCAT(column_name ORDER BY seq_in_index) "
        "FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'products' "
        "AND index_type = 'FULLTEXT' GROUP BY index_name, index_type"))
    return {(name, f"{kind} {columns}") for name, kind, columns in rows}


def index_names(engine):
    with engine.connect() as connection:
        return {index["name"] for index in inspect(connection).get_indexes("products")}


def catalogue_at(uri, revision, sku, name, description=None):
    """The products schema at ``revision`` holding one product; returns its Alembic config and an engine."""
    cfg = alembic_config("products", uri)
    command.upgrade(cfg, revision)
    engine = make_engine(uri)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO products (sku, name, description, price, currency, available, stock_version, created_at, "
            "updated_at) VALUES (:sku, :name, :description, 9.50, 'USD', 3, 1, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00')"), {"sku": sku, "name": name, "description": description})
    return cfg, engine


def test_the_search_indexes_come_and_go_with_rows_in_the_table(db_uris):
    cfg, engine = catalogue_at(db_uris["products:Base"], "0001", "SKU-1", "Lamp")
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


def test_the_text_index_covers_the_rows_already_there_and_goes_on_downgrade(db_uris):
    cfg, engine = catalogue_at(db_uris["products:Base"], "0002", "BLD-1", "Roasted Blend", "Dark and smoky")
    query = {"q": "roast SMOK bld", "sort": "name", "page": 1, "page_size": 20}
    try:
        command.upgrade(cfg, "head")
        with Session(engine) as session:
            total, found = search_products(session, query)
            assert (total, [product.sku for product in found]) == (1, ["BLD-1"])
            assert search_products(session, {**query, "q": "blend dark 1"})[0] == 1
            assert search_products(session, {**query, "q": "oasted"})[0] == 0
        with engine.connect() as connection:
            assert text_index(connection) == TEXT_INDEX_OBJECTS[connection.dialect.name]
        command.downgrade(cfg, "0002")
        assert TEXT_INDEX not in index_names(engine)
        with engine.connect() as connection:
            assert text_index(connection) == set()
            assert connection.scalar(text("SELECT name FROM products WHERE sku = 'BLD-1'")) == "Roasted Blend"
    finally:
        engine.dispose()
