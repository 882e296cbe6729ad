"""Personal data encrypted at rest: email, name and phone (common.crypto), the email found by its blind index

Revision ID: 0003
Revises: 0002

``active_email`` (the plain address while the account is live) becomes ``active_email_index`` (the keyed HMAC of
it), still unique among live accounts. Existing rows and outbox envelopes are encrypted in place with the first key
of ``DATA_ENCRYPTION_KEYS``. ``erased_at`` marks an account erased for good (its personal fields NULL).
"""

import sqlalchemy as sa
from alembic import op

from common.migrations import decrypt_rows, encrypt_rows

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PERSONAL = ["email", "name", "phone"]


def live_email_index(keyring, row):
    return {"active_email_index": keyring.blind_index(row["email"]) if row["active_email"] is not None else None}


def upgrade():
    op.drop_index("ix_users_email", table_name="users")
    op.drop_index("uq_users_active_email", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("active_email_index", sa.String(64), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
        batch.alter_column("email", type_=sa.Text(), existing_type=sa.String(254), nullable=True)
        batch.alter_column("name", type_=sa.Text(), existing_type=sa.String(100), nullable=True)
        batch.alter_column("phone", type_=sa.Text(), existing_type=sa.String(32), existing_nullable=True)
    encrypt_rows("users", PERSONAL, derived=live_email_index, reads=["active_email"])
    with op.batch_alter_table("users") as batch:
        batch.drop_column("active_email")
    op.create_index("uq_users_active_email_index", "users", ["active_email_index"], unique=True)
    encrypt_rows("outbox", ["envelope"])


def downgrade():
    decrypt_rows("outbox", ["envelope"])
    op.drop_index("uq_users_active_email_index", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("active_email", sa.String(254), nullable=True))
    decrypt_rows("users", PERSONAL)
    users = sa.table("users", sa.column("email"), sa.column("active_email"), sa.column("active_email_index"))
    op.execute(users.update().where(users.c.active_email_index.is_not(None)).values(active_email=users.c.email))
    op.execute(users.delete().where(users.c.email.is_(None)))  # erased: nothing left to give back
    with op.batch_alter_table("users") as batch:
        batch.drop_column("active_email_index")
        batch.drop_column("erased_at")
        batch.alter_column("email", type_=sa.String(254), existing_type=sa.Text(), nullable=False)
        batch.alter_column("name", type_=sa.String(100), existing_type=sa.Text(), nullable=False)
        batch.alter_column("phone", type_=sa.String(32), existing_type=sa.Text(), existing_nullable=True)
    op.create_index("ix_users_email", "users", ["email"])
    op.create_index("uq_users_active_email", "users", ["active_email"], unique=True)
