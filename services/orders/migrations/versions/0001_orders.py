"""Orders, lines, status history, idempotency keys, outbox and processed events.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("shipping_address", sa.Text(), nullable=False),
        sa.Column("payment_status", sa.String(20), nullable=False),
        sa.Column("payment_reference", sa.String(64), nullable=True),
        sa.Column("payment_failure_reason", sa.String(64), nullable=True),
        sa.Column("stock_action", sa.String(10), nullable=True),
        sa.Column("refund_pending", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])
    op.create_index("ix_orders_status_updated", "orders", ["status", "updated_at"])
    op.create_table(
        "order_lines",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("order_id", ID, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("line_total_cents", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_order_lines_order_id", "order_lines", ["order_id"])
    op.create_table(
        "order_status_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("order_id", ID, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_order_status_history_order_id", "order_status_history", ["order_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("order_id", ID, sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("customer_id", "key", name="uq_idempotency_customer_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("handler", sa.String(100), primary_key=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    for table in ("processed_events", "outbox", "idempotency_keys", "order_status_history", "order_lines", "orders"):
        op.drop_table(table)
