"""search indexes: the live rows of a category in each sort order; no index on available alone

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 01:50:00

A search always filters ``deleted_at IS NULL``; with a category it reads (category_id, deleted_at, <sort>, id)
in order and stops after a page, and the price index also holds ``available``, so the count of a category, price
window and ``in_stock`` reads the index alone. ``ix_products_available`` served no search (most rows are in stock)
and cost an index write on every stock event the projection applies.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CATEGORY_INDEXES = {
    "ix_products_category_live_name": ["category_id", "deleted_at", "name", "id"],
    "ix_products_category_live_price": ["category_id", "deleted_at", "price", "id", "available"],
    "ix_products_category_live_created": ["category_id", "deleted_at", "created_at", "id"],
}


def upgrade():
    # The new category indexes first: MariaDB keeps an index on the foreign key's column at all times.
    for name, columns in CATEGORY_INDEXES.items():
        op.create_index(name, "products", columns)
    op.drop_index("ix_products_category_price", "products")
    op.drop_index("ix_products_available", "products")


def downgrade():
    op.create_index("ix_products_available", "products", ["available"])
    op.create_index("ix_products_category_price", "products", ["category_id", "price"])
    for name in CATEGORY_INDEXES:
        op.drop_index(name, "products")
