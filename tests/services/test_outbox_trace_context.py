"""0090 in every service with an outbox: the nullable ``trace_context`` column, up and down, on SQLite and MariaDB."""

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from common.db import make_engine
from common.migrations import alembic_config, upgrade

OUTBOX_SERVICES = ("accounts", "products", "inventory", "orders", "notifications")


def outbox_columns(uri):
    engine = make_engine(uri)
    with engine.connect() as connection:
        columns = {column["name"]: column for column in inspect(connection).get_columns("outbox")}
    engine.dispose()
    return columns


@pytest.mark.parametrize("service", OUTBOX_SERVICES)
def test_the_outbox_keeps_a_nullable_trace_context_and_gives_it_back(db_uris, service):
    uri = db_uris[f"{service}:Base"]
    upgrade(service, uri)
    column = outbox_columns(uri)["trace_context"]
    assert column["nullable"] is True

    config = alembic_config(service, uri)
    previous = ScriptDirectory.from_config(config).get_revision("0090").down_revision
    command.downgrade(config, previous)
    assert "trace_context" not in outbox_columns(uri)
    upgrade(service, uri)
    assert "trace_context" in outbox_columns(uri)
