"""The notifications schema: migrations build what the models describe, and 0002 encrypts the rows already there."""

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.db import make_engine
from common.migrations import alembic_config, upgrade
from services.notifications.models import Base, Notification, OutboxMessage
from tests.support import assert_not_stored


def test_the_migrations_build_the_models(db_uris):
    uri = db_uris["notifications:Base"]
    upgrade("notifications", uri)
    engine = make_engine(uri)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(
            connection, opts={"version_table": "alembic_version_notifications"}), Base.metadata)
    engine.dispose()
    assert differences == []


def test_0002_encrypts_recipients_contexts_and_outbox_rows_and_finds_their_customer(db_uris):
    uri = db_uris["notifications:Base"]
    upgrade("notifications", uri, revision="0001")
    engine = make_engine(uri)
    context = {"order": {"id": 5, "customer_id": 7}, "customer": {"name": "Old Customer", "email": "old@example.com"}}
    envelope = {"event_id": "e-1", "data": {"id": 1, "recipient": "old@example.com"}}
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO notifications (event_id, kind, channel, recipient, subject, context, order_id, status,"
            " attempts, last_error, next_attempt_at, created_at) VALUES ('e-0', 'order_confirmation', 'email',"
            " 'old@example.com', 'Order #5', :context, 5, 'FAILED', 3, '550 old@example.com refused',"
            " '2026-12-01 00:00:00', '2026-12-01 00:00:00')"), {"context": json.dumps(context)})
        connection.execute(text(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope, created_at, attempts)"
            " VALUES ('e-1', 'notification.sent', '1', :envelope, '2026-12-01 00:00:00', 1)"),
            {"envelope": json.dumps(envelope)})

    upgrade("notifications", uri)

    assert_not_stored([uri], "old@example.com", "Old Customer")
    with Session(engine) as session:
        notification = session.scalars(select(Notification)).one()
        assert (notification.recipient, notification.customer_id) == ("old@example.com", 7)
        assert json.loads(notification.context) == context and "refused" in notification.last_error
        assert json.loads(session.scalar(select(OutboxMessage.envelope))) == envelope
    command.downgrade(alembic_config("notifications", uri), "0001")
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT recipient FROM notifications")) == "old@example.com"
    engine.dispose()
