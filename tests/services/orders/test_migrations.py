"""The orders schema: migrations build what the models describe, and 0002 moves old rows to payment commands."""

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from common.db import make_engine
from common.migrations import alembic_config, upgrade
from services.orders.models import Base

VERSION_TABLE = "alembic_version_orders"


def test_the_migrations_build_the_models(db_uris):
    uri = db_uris["orders:Base"]
    upgrade("orders", uri)
    engine = make_engine(uri)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}),
                                       Base.metadata)
        assert "processed_events" not in inspect(connection).get_table_names()
    engine.dispose()
    assert differences == []


def test_0002_turns_owed_refunds_into_releases_and_forgets_tokens_in_the_outbox(db_uris):
    uri = db_uris["orders:Base"]
    upgrade("orders", uri, revision="0001")
    engine = make_engine(uri)
    envelope = {"event_id": "e-1", "event_type": "order.created", "data": {"id": 1, "payment_token": "tok_visa"}}
    with engine.begin() as connection:
        for order_id, refund in ((1, True), (2, False)):
            connection.execute(text(
                "INSERT INTO orders (id, customer_id, status, currency, total_cents, shipping_address, payment_status,"
                " refund_pending, created_at, updated_at) VALUES (:id, 1, 'CANCELLED', 'USD', 100, '{}', 'authorized',"
                " :refund, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"), {"id": order_id, "refund": refund})
        connection.execute(text(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope, created_at, attempts)"
            " VALUES ('e-1', 'order.created', '1', :envelope, '2026-12-01 00:00:00', 1)"),
            {"envelope": json.dumps(envelope)})

    upgrade("orders", uri, revision="0002")

    with engine.connect() as connection:
        actions = dict(connection.execute(text("SELECT id, payment_action FROM orders")).all())
        stored = json.loads(connection.scalar(text("SELECT envelope FROM outbox")))
    assert actions == {1: "release", 2: None}
    assert stored["data"] == {"id": 1}
    command.downgrade(alembic_config("orders", uri), "0001")
    with engine.connect() as connection:
        assert dict(connection.execute(text("SELECT id, refund_pending FROM orders")).all()) == {1: 1, 2: 0}
    engine.dispose()
