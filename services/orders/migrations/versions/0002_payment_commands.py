"""payment commands: the token kept on the order until the provider has it, one owed payment action

Revision ID: 0002
Revises: 0001

``orders`` now commands ``payments`` over RPC (docs/orders.md): the order keeps the customer's payment token only
until the provider answered (it used to travel in ``order.created``, so it stayed in the outbox), and what it still
owes the provider (``capture`` once shipped, ``release`` once cancelled or failed) replaces ``refund_pending``.
Tokens already in old outbox rows are removed. No handler of orders keeps processed events any more: its steps are
guarded by the order's state.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("event_type", sa.String),
                  sa.column("envelope", sa.Text))
orders = sa.table("orders", sa.column("refund_pending", sa.Boolean), sa.column("payment_action", sa.String))


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("payment_token", sa.String(100), nullable=True))
        batch.add_column(sa.Column("payment_action", sa.String(10), nullable=True))
    op.execute(orders.update().where(orders.c.refund_pending.is_(True)).values(payment_action="release"))
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("refund_pending")
    forget_payment_tokens()
    op.drop_table("processed_events")


def forget_payment_tokens():
    connection = op.get_bind()
    rows = connection.execute(sa.select(outbox.c.id, outbox.c.envelope)
                              .where(outbox.c.event_type == "order.created")).all()
    for row_id, text in rows:
        envelope = json.loads(text)
        if envelope.get("data", {}).pop("payment_token", None) is not None:
            connection.execute(outbox.update().where(outbox.c.id == row_id).values(envelope=json.dumps(envelope)))


def downgrade():
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("handler", sa.String(100), primary_key=True),
        sa.Column("processed_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("refund_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE orders SET refund_pending = CASE WHEN payment_action = 'release' THEN 1 ELSE 0 END"))
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("payment_action")
        batch.drop_column("payment_token")
