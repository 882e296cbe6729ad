"""text search: a word index over products' name, description and sku

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 03:45:00

``q`` matches word prefixes through the database's own text index instead of scanning ``LIKE '%q%'``.
MariaDB/MySQL: a FULLTEXT index, queried with ``MATCH ... AGAINST`` in boolean mode; InnoDB maintains it.
SQLite: an FTS5 table with external content (it stores only the index, ``rowid`` = ``products.id``), kept in step by
triggers on insert, delete and changes of the three columns (stock updates do not touch it); ``rebuild`` indexes the
rows already there. A later batch migration that recreates ``products`` on SQLite drops these triggers: it has to
create them again.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TEXT_COLUMNS = ["name", "description", "sku"]
FTS_INSERT = ("INSERT INTO products_fts (rowid, name, description, sku) "
              "VALUES (new.id, new.name, new.description, new.sku);")
FTS_DELETE = ("INSERT INTO products_fts (products_fts, rowid, name, description, sku) "
              "VALUES ('delete', old.id, old.name, old.description, old.sku);")
SQLITE_TRIGGERS = {
    "products_fts_insert": f"AFTER INSERT ON products BEGIN {FTS_INSERT} END",
    "products_fts_delete": f"AFTER DELETE ON products BEGIN {FTS_DELETE} END",
    "products_fts_update": f"AFTER UPDATE OF name, description, sku ON products BEGIN {FTS_DELETE} {FTS_INSERT} END",
}


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        op.create_index("ix_products_text", "products", TEXT_COLUMNS, mysql_prefix="FULLTEXT")
        return
    # unicode61 splits on everything but letters and digits and folds case and diacritics, as MariaDB's _ci
    # collation and its FULLTEXT parser do.
    op.execute("CREATE VIRTUAL TABLE products_fts USING fts5(name, description, sku, content='products', "
               "content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute("INSERT INTO products_fts (products_fts) VALUES ('rebuild')")


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        op.drop_index("ix_products_text", "products")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE products_fts")
