"""Accounts over real RPC on SQLite and MariaDB: registration, login, deletion, password upgrades."""

import pytest
from nameko import config
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import create_engine, select

from common.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.accounts.models import User
from services.accounts.service import AccountsService
from tests.support import wait_until

CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
deletions = []


class DeletionWatcher:
    name = "deletion_watcher"

    @event_handler("accounts", "user.deleted")
    def record(self, envelope):
        deletions.append(envelope)


@pytest.fixture
def accounts(service_config, container_factory):
    with config.patch(CHEAP_ARGON2):
        container_factory(AccountsService).start()
        with ServiceRpcClient("accounts") as client:
            yield client


def stored_users(uri):
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            return conn.execute(select(User.__table__).order_by(User.id)).mappings().all()
    finally:
        engine.dispose()


def test_a_registered_user_authenticates_with_any_case_of_the_email(accounts, db_uris):
    user = accounts.register("Ann.Lee@Example.COM", "correct horse", "Ann Lee", phone="+44 20 7946 0000")

    assert user["email"] == "ann.lee@example.com"
    assert user["role"] == "customer" and user["name"] == "Ann Lee" and user["phone"] == "+44 20 7946 0000"
    assert user["created_at"].endswith("Z") and isinstance(user["id"], int)
    assert accounts.authenticate("ANN.LEE@example.com", "correct horse") == user
    assert accounts.get_user(user["id"]) == user
    row = next(r for r in stored_users(db_uris["accounts:Base"]) if r["id"] == user["id"])
    assert row["password_hash"].startswith("$argon2id$") and "correct horse" not in row["password_hash"]


def test_an_email_registers_once_whatever_its_case(accounts):
    accounts.register("bob@example.com", "password-1", "Bob")

    with pytest.raises(Conflict) as taken:
        accounts.register("BOB@Example.com", "password-2", "Bobby")
    assert taken.value.code == "email_taken"


@pytest.mark.parametrize("email, password, name, field", [
    ("carol@example.com", "short", "Carol", "password"),
    ("not-an-email", "long enough", "Carol", "email"),
    ("carol@example.com", "long enough", "", "name"),
])
def test_invalid_registrations_are_rejected_field_by_field(accounts, email, password, name, field):
    with pytest.raises(ValidationFailed) as invalid:
        accounts.register(email, password, name)
    assert invalid.value.status == 422 and field in invalid.value.details


def test_wrong_password_and_unknown_email_fail_alike(accounts):
    accounts.register("dave@example.com", "password-1", "Dave")

    with pytest.raises(Unauthorized) as wrong_password:
        accounts.authenticate("dave@example.com", "password-2")
    with pytest.raises(Unauthorized) as unknown_email:
        accounts.authenticate("nobody@example.com", "password-1")
    assert wrong_password.value.to_dict() == unknown_email.value.to_dict()
    assert wrong_password.value.code == "invalid_credentials"


def test_a_deleted_user_is_gone_and_the_email_can_register_again(accounts, container_factory):
    deletions.clear()
    container_factory(DeletionWatcher).start()
    user = accounts.register("erin@example.com", "password-1", "Erin")

    accounts.delete_user(user["id"])

    wait_until(lambda: deletions, message="user.deleted")
    assert deletions[0]["aggregate_id"] == str(user["id"]) and deletions[0]["data"]["id"] == user["id"]

    with pytest.raises(NotFound) as gone:
        accounts.get_user(user["id"])
    assert gone.value.code == "user_not_found"
    with pytest.raises(Unauthorized):
        accounts.authenticate("erin@example.com", "password-1")
    with pytest.raises(NotFound):
        accounts.delete_user(user["id"])
    again = accounts.register("erin@example.com", "password-2", "Erin Again")
    assert again["id"] != user["id"]
    assert accounts.authenticate("erin@example.com", "password-2")["id"] == again["id"]


def test_unknown_user_ids_are_not_found(accounts):
    with pytest.raises(NotFound):
        accounts.get_user(987654)
    with pytest.raises(ValidationFailed):
        accounts.get_user("abc")


def test_a_hash_made_with_old_parameters_is_upgraded_at_login(accounts, db_uris):
    user = accounts.register("finn@example.com", "password-1", "Finn")
    before = next(r for r in stored_users(db_uris["accounts:Base"]) if r["id"] == user["id"])["password_hash"]

    with config.patch({"ARGON2_TIME_COST": 2}):
        accounts.authenticate("finn@example.com", "password-1")

    after = next(r for r in stored_users(db_uris["accounts:Base"]) if r["id"] == user["id"])["password_hash"]
    assert ",t=1," in before and ",t=2," in after
    assert accounts.authenticate("finn@example.com", "password-1")["id"] == user["id"]
