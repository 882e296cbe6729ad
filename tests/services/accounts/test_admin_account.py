"""The configured admin account exists once the service is up, however many replicas start together."""

import eventlet
import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import create_engine, select

from common.crypto import Keyring
from common.errors import Unauthorized
from services.accounts import admin as bootstrap
from services.accounts.models import User
from services.accounts.service import AccountsService

CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


@pytest.fixture
def cheap_hashing(service_config):
    with config.patch(CHEAP_ARGON2):
        yield


def users_with_email(uri, email):
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            return conn.execute(select(User.__table__).where(
                User.active_email_index == Keyring.from_config().blind_index(email))).mappings().all()
    finally:
        engine.dispose()


def test_two_replicas_starting_at_once_leave_one_working_admin(cheap_hashing, container_factory, db_uris):
    replicas = [container_factory(AccountsService) for _ in range(2)]

    starts = [eventlet.spawn(replica.start) for replica in replicas]
    for start in starts:
        start.wait()

    admins = users_with_email(db_uris["accounts:Base"], "admin@example.com")
    assert len(admins) == 1 and admins[0]["role"] == "admin"
    with ServiceRpcClient("accounts") as accounts:
        user = accounts.authenticate("admin@example.com", "admin-password-1")
    assert user["role"] == "admin" and user["id"] == admins[0]["id"]


def test_a_restart_with_a_new_password_resets_it_and_promotes_an_existing_account(
        cheap_hashing, container_factory):
    with config.patch({"ADMIN_EMAIL": "boss@example.com", "ADMIN_PASSWORD": "first-password"}):
        first = container_factory(AccountsService)
        first.start()
        with ServiceRpcClient("accounts") as accounts:
            customer = accounts.register("Owner@Example.com", "customer-password", "Owner")
        first.stop()

    with config.patch({"ADMIN_EMAIL": "OWNER@example.com", "ADMIN_PASSWORD": "second-password"}):
        container_factory(AccountsService).start()
        with ServiceRpcClient("accounts") as accounts:
            admin = accounts.authenticate("owner@example.com", "second-password")
            with pytest.raises(Unauthorized):
                accounts.authenticate("owner@example.com", "customer-password")
            assert accounts.authenticate("boss@example.com", "first-password")["role"] == "admin"

    assert admin["id"] == customer["id"] and admin["role"] == "admin"


def test_a_login_that_arrives_while_the_admin_is_being_created_waits_for_it(
        cheap_hashing, container_factory, monkeypatch):
    real_hash = bootstrap.hash_password
    monkeypatch.setattr(bootstrap, "hash_password", lambda password: eventlet.sleep(1.5) or real_hash(password))
    container = container_factory(AccountsService)
    starting = eventlet.spawn(container.start)
    eventlet.sleep(0.5)  # the RPC consumer is up; the admin's password is still being hashed

    with ServiceRpcClient("accounts") as accounts:
        user = accounts.authenticate("admin@example.com", "admin-password-1")

    assert user["role"] == "admin"
    starting.wait()
