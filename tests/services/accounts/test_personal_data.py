"""Accounts' personal data at rest (SQLite and MariaDB): encrypted, found by its blind index, erased for good, and
a missing or wrong key stops the service before it touches a row."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from nameko import config
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import create_engine, text

from common.crypto import KeyringError, generate_key
from common.errors import Conflict, NotFound, Unauthorized
from common.migrations import alembic_config, upgrade
from services.accounts.models import Base
from services.accounts.passwords import hash_password
from services.accounts.service import AccountsService
from tests.support import assert_not_stored, stored_text, wait_until

CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
ANN = {"email": "Ann.Lee@Example.com", "password": "correct-horse", "name": "Ann Lee", "phone": "+447700900123"}
erasures = []


class ErasureWatcher:
    name = "erasure_watcher"

    @event_handler("accounts", "user.erased")
    def record(self, envelope):
        erasures.append(envelope)


@pytest.fixture
def accounts(service_config, container_factory):
    erasures.clear()
    with config.patch(CHEAP_ARGON2):
        container_factory(AccountsService).start()
        with ServiceRpcClient("accounts") as client:
            yield client


def test_email_name_and_phone_are_stored_encrypted_and_login_and_search_still_work(accounts, db_uris):
    ann = accounts.register(**ANN)
    accounts.register("bob@example.com", "correct-horse", "Bob Stone")

    assert_not_stored([db_uris["accounts:Base"]], "ann.lee@example.com", "Ann Lee", "+447700900123", "example.com")
    assert accounts.authenticate("ANN.LEE@example.com", "correct-horse")["id"] == ann["id"]
    assert accounts.get_user(ann["id"]) == ann and ann["email"] == "ann.lee@example.com"
    assert [user["name"] for user in accounts.list_users(email="lee@EXAMPLE")["items"]] == ["Ann Lee"]
    assert accounts.list_users(email="example.com")["total"] == 3  # with the admin
    with pytest.raises(Conflict):
        accounts.register("ann.lee@example.COM", "another-pass", "Ann Again")


def test_an_erased_account_keeps_no_personal_data_and_says_so_without_any(accounts, db_uris, container_factory):
    container_factory(ErasureWatcher).start()
    ann = accounts.register(**ANN)

    assert accounts.erase_user(ann["id"]) is None

    with pytest.raises(NotFound):
        accounts.get_user(ann["id"])
    with pytest.raises(Unauthorized):
        accounts.authenticate(ANN["email"], ANN["password"])
    with pytest.raises(NotFound):
        accounts.erase_user(ann["id"])
    [erased] = wait_until(lambda: erasures, message="user.erased")
    assert erased["data"].keys() == {"id", "erased_at"} and erased["data"]["id"] == ann["id"]
    engine = create_engine(db_uris["accounts:Base"])
    with engine.connect() as connection:
        row = connection.execute(text("SELECT email, name, phone, password_hash, active_email_index, erased_at"
                                      " FROM users WHERE id = :id"), {"id": ann["id"]}).one()
    engine.dispose()
    assert tuple(row)[:5] == (None, None, None, "", None) and row.erased_at is not None
    assert accounts.register(**ANN)["id"] != ann["id"]  # the address is free again, the id never reused


def test_the_migration_encrypts_existing_plain_rows_and_its_downgrade_decrypts_them(db_uris, service_config,
                                                                                     container_factory):
    uri = db_uris["accounts:Base"]
    command.downgrade(alembic_config("accounts", uri), "0002")
    engine = create_engine(uri)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO users (email, active_email, password_hash, name, phone, role, created_at) VALUES"
            " ('old@example.com', 'old@example.com', :hash, 'Old Timer', '+441234567890', 'customer',"
            " '2026-01-01 00:00:00')"), {"hash": hash_password("old-password")})
        connection.execute(text(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope, created_at, attempts) VALUES"
            " ('e-1', 'user.deleted', '9', '{\"data\": {\"id\": 9}}', '2026-01-01 00:00:00', 1)"))

    upgrade("accounts", uri)

    assert_not_stored([uri], "old@example.com", "Old Timer", "+441234567890", '"id": 9')
    with config.patch(CHEAP_ARGON2):
        container = container_factory(AccountsService)
        container.start()
        with ServiceRpcClient("accounts") as client:
            assert client.authenticate("old@example.com", "old-password")["name"] == "Old Timer"
            with pytest.raises(Conflict):
                client.register("OLD@example.com", "another-pass", "Someone")
        container.stop()
    command.downgrade(alembic_config("accounts", uri), "0002")
    with engine.connect() as connection:
        assert ("old@example.com", "old@example.com", "Old Timer") in connection.execute(
            text("SELECT email, active_email, name FROM users")).all()
    engine.dispose()


@pytest.mark.parametrize("keys, message", [
    ("", "DATA_ENCRYPTION_KEYS is not set"), (generate_key(), "users.email holds a value under key id"),
])
def test_a_missing_or_wrong_key_stops_the_service_at_start_and_changes_no_row(keys, message, accounts, db_uris,
                                                                               container_factory):
    accounts.register(**ANN)
    before = stored_text(db_uris["accounts:Base"])

    with config.patch({"DATA_ENCRYPTION_KEYS": keys}), pytest.raises(KeyringError, match=message):
        container_factory(AccountsService).start()

    assert stored_text(db_uris["accounts:Base"]) == before


def test_the_migrations_build_the_models(db_uris, service_config):
    engine = create_engine(db_uris["accounts:Base"])
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(
            connection, opts={"version_table": "alembic_version_accounts"}), Base.metadata)
    engine.dispose()
    assert differences == []
