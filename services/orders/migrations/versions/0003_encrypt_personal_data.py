"""Personal data encrypted at rest: the shipping address (with the customer's name) and the payment token

Revision ID: 0003
Revises: 0002

Existing orders and outbox envelopes (order events carry the address) are encrypted in place with the first key of
``DATA_ENCRYPTION_KEYS`` (common.crypto).
"""

import sqlalchemy as sa
from alembic import op

from common.migrations import decrypt_rows, encrypt_rows

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("payment_token", type_=sa.Text(), existing_type=sa.String(100), existing_nullable=True)
    encrypt_rows("orders", ["shipping_address", "payment_token"])
    encrypt_rows("outbox", ["envelope"])


def downgrade():
    decrypt_rows("outbox", ["envelope"])
    decrypt_rows("orders", ["shipping_address", "payment_token"])
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("payment_token", type_=sa.String(100), existing_type=sa.Text(), existing_nullable=True)
