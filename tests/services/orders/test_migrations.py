"""The orders schema: migrations build what the models describe, and 0002 moves old rows to payment commands."""

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from common.db import make_engine
from common.migrations import alembic_config, upgrade
from services.orders.models import Base, Order, OutboxMessage
from tests.support import assert_not_stored

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


def test_0003_encrypts_the_addresses_tokens_and_outbox_rows_already_there(db_uris):
    uri = db_uris["orders:Base"]
    upgrade("orders", uri, revision="0002")
    engine = make_engine(uri)
    address = {"name": "Old Customer", "line1": "9 Old Road", "city": "York", "postal_code": "YO1 7HH", "country": "GB"}
    envelope = {"event_id": "e-1", "event_type": "order.created", "data": {"id": 1, "shipping_address": address}}
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO orders (id, customer_id, status, currency, total_cents, shipping_address, payment_status,"
            " payment_token, created_at, updated_at) VALUES (1, 7, 'PENDING_PAYMENT', 'USD', 100, :address,"
            " 'pending', 'tok_visa', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"), {"address": json.dumps(address)})
        connection.execute(text(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope, created_at, attempts)"
            " VALUES ('e-1', 'order.created', '1', :envelope, '2026-12-01 00:00:00', 0)"),
            {"envelope": json.dumps(envelope)})

    upgrade("orders", uri)

    assert_not_stored([uri], "Old Customer", "9 Old Road", "tok_visa", "YO1 7HH")
    with Session(engine) as session:
        order = session.get(Order, 1)
        assert json.loads(order.shipping_address) == address and order.payment_token == "tok_visa"
        assert json.loads(session.scalar(select(OutboxMessage.envelope))) == envelope
    command.downgrade(alembic_config("orders", uri), "0002")
    with engine.connect() as connection:
        assert json.loads(connection.scalar(text("SELECT shipping_address FROM orders"))) == address
    engine.dispose()
