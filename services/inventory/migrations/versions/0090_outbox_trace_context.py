"""Outbox: each row keeps the W3C trace context of the transaction that wrote it, so the relay's later publish
continues that trace (common.tracing).

Revision ID: 0090
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0090"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("outbox", sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("trace_context")
