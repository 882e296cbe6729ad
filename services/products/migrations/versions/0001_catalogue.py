"""catalogue: categories, products (with the stock projection), outbox, processed events

Revision ID: 0001
Revises:
Create Date: 2026-11-25 00:42:22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def ci_string(length):
    return sa.String(length).with_variant(sa.String(length, collation="NOCASE"), "sqlite")


def upgrade():
    op.create_table(
        "categories",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", ci_string(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("parent_id", Id, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["categories.id"], name="fk_categories_parent_id"),
        sa.UniqueConstraint("name", name="uq_categories_name"),
    )
    op.create_index("ix_categories_parent_id", "categories", ["parent_id"])

    op.create_table(
        "products",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("sku", ci_string(64), nullable=False),
        sa.Column("name", ci_string(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("category_id", Id, nullable=True),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("stock_version", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"], name="fk_products_category_id"),
        sa.UniqueConstraint("sku", name="uq_products_sku"),
    )
    op.create_index("ix_products_name", "products", ["name"])
    op.create_index("ix_products_price", "products", ["price"])
    op.create_index("ix_products_created_at", "products", ["created_at"])
    op.create_index("ix_products_category_price", "products", ["category_id", "price"])
    op.create_index("ix_products_available", "products", ["available"])

    op.create_table(
        "outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(length=36), nullable=False, unique=True),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=36), primary_key=True),
        sa.Column("handler", sa.String(length=100), primary_key=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table("processed_events")
    op.drop_table("outbox")
    op.drop_table("products")
    op.drop_table("categories")
