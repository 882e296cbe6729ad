"""The webhooks schema is built by its Alembic migration, on SQLite and MariaDB, and matches the models."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from common.db import make_engine
from services.webhooks.models import Base

ROOT = Path(__file__).resolve().parents[3]


def test_the_cli_migrates_an_empty_database_to_the_models(db_uris):
    uri = db_uris["webhooks:Base"]
    env = {**os.environ, "WEBHOOKS_DB_URI": uri}
    for _ in range(2):  # a second run is a no-op
        done = subprocess.run([sys.executable, "-m", "common.migrations", "--config", "config/dev.yml", "webhooks"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "migrated webhooks" in done.stderr

    engine = make_engine(uri)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert {"webhooks", "webhook_deliveries", "webhook_attempts", "outbox", "processed_events"} <= tables
        assert connection.scalar(text("SELECT version_num FROM alembic_version_webhooks")) == "0001"
        differences = compare_metadata(MigrationContext.configure(connection, opts={
            "version_table": "alembic_version_webhooks"}), Base.metadata)
    engine.dispose()
    assert differences == []
