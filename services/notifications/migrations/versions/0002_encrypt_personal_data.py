"""Personal data encrypted at rest: recipients, rendering contexts, send errors, outbox envelopes; customer_id

Revision ID: 0002
Revises: 0001

Existing rows are encrypted in place with the first key of ``DATA_ENCRYPTION_KEYS`` (common.crypto).
``customer_id`` (from the stored context's order) lets an erasure find a customer's messages; an invoice's
``erased_at`` says it is (to be) re-issued without the customer's name and address.
"""

import json

import sqlalchemy as sa
from alembic import op

from common.migrations import decrypt_rows, encrypt_rows

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ENCRYPTED = ["recipient", "context", "last_error"]


def customer_of(keyring, row):
    try:
        customer_id = (json.loads(row["context"]).get("order") or {}).get("customer_id")
    except (TypeError, ValueError, AttributeError):
        customer_id = None
    return {"customer_id": customer_id if isinstance(customer_id, int) else None}


def upgrade():
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("recipient", type_=sa.Text(), existing_type=sa.String(255), existing_nullable=False)
        batch.alter_column("last_error", type_=sa.Text(), existing_type=sa.String(1000), existing_nullable=True)
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
    op.create_index("ix_notifications_customer_id", "notifications", ["customer_id"])
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
    encrypt_rows("notifications", ENCRYPTED, derived=customer_of)
    encrypt_rows("outbox", ["envelope"])


def downgrade():
    decrypt_rows("outbox", ["envelope"])
    decrypt_rows("notifications", ENCRYPTED)
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("erased_at")
    op.drop_index("ix_notifications_customer_id", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("customer_id")
        batch.alter_column("last_error", type_=sa.String(1000), existing_type=sa.Text(), existing_nullable=True)
        batch.alter_column("recipient", type_=sa.String(255), existing_type=sa.Text(), existing_nullable=False)
