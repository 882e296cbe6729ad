"""Key rotation on SQLite and MariaDB: rows written under key A, key B put first, ``scripts.rotate_keys`` (interrupted
and resumed, with the service writing meanwhile), key A removed: every row still reads and nothing is under A."""

import json
import os
import subprocess
import sys
from pathlib import Path

import eventlet
import pytest
import yaml
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy.orm import Session

from common.crypto import Keyring, attach_keyring, generate_key
from common.db import make_engine
from scripts.rotate_keys import _Quiet, rotate
from services.accounts.models import Base as AccountsBase
from services.accounts.service import AccountsService
from services.orders.models import Order
from tests.conftest import DATA_KEYS
from tests.support import stored_text

ROOT = Path(__file__).resolve().parents[2]
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
KEY_A, KEY_B = generate_key(), generate_key()
ADDRESS = {"name": "Ann Lee", "line1": "2 High Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}


def keys(*names):
    return {**CHEAP_ARGON2, "DATA_ENCRYPTION_KEYS": ",".join(names)}


def ring(*names):
    return Keyring.from_config({**DATA_KEYS, **keys(*names)})


class Interrupted(Exception):
    pass


class StopAfterFirstBatch(_Quiet):
    def update(self, _):
        raise Interrupted


def register(client, number):
    return client.register(f"user{number}@example.com", "correct-horse", f"User {number}", f"+44770090{number:04d}")


def write_order(uri, keyring):
    engine = make_engine(uri)
    attach_keyring(engine, keyring)
    with Session(engine) as session, session.begin():
        order = Order(customer_id=1, status="PAID", currency="USD", total_cents=900, payment_status="authorized",
                      shipping_address=json.dumps(ADDRESS))
        session.add(order)
        session.flush()
        order_id = order.id
    engine.dispose()
    return order_id


def read_order_address(uri, keyring, order_id):
    engine = make_engine(uri)
    attach_keyring(engine, keyring)
    with Session(engine) as session:
        address = json.loads(session.get(Order, order_id).shipping_address)
    engine.dispose()
    return address


def run_cli(tmp_path, db_uris, data_keys, *services):
    settings = {"DB_URIS": db_uris, "DATA_ENCRYPTION_KEYS": data_keys, "DATA_INDEX_KEY": DATA_KEYS["DATA_INDEX_KEY"]}
    config_path = tmp_path / "rotate.yml"
    config_path.write_text(yaml.safe_dump(settings))
    return subprocess.run([sys.executable, "-m", "scripts.rotate_keys", "--config", str(config_path), "--state",
                           str(tmp_path / "state.json"), "--batch", "2", *services],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=120, check=True)


def test_rows_under_a_retired_key_are_rewritten_and_still_read_once_it_is_gone(service_config, db_uris,
                                                                               container_factory, tmp_path):
    accounts_uri, orders_uri = db_uris["accounts:Base"], db_uris["orders:Base"]
    with config.patch(keys(KEY_A)):
        under_a = container_factory(AccountsService)
        under_a.start()
        with ServiceRpcClient("accounts") as client:
            users = [register(client, number) for number in range(5)]
            client.delete_user(users[0]["id"])  # an outbox row too
        under_a.stop()
    order_id = write_order(orders_uri, ring(KEY_A))
    kid_a, kid_b = ring(KEY_A).current_id, ring(KEY_B).current_id
    assert f"pe1.{kid_a}." in stored_text(accounts_uri)

    with config.patch(keys(KEY_B, KEY_A)):  # B first: new writes under B, A still reads
        both = container_factory(AccountsService)
        both.start()
        engine = make_engine(accounts_uri)
        state = {}
        with pytest.raises(Interrupted):
            rotate(engine, AccountsBase.metadata, ring(KEY_B, KEY_A), "accounts", batch=2, state=state,
                   progress=StopAfterFirstBatch)
        assert state == {"accounts.outbox": 1}  # where the interrupted run got to (the outbox comes first)
        with ServiceRpcClient("accounts") as client:
            writer = eventlet.spawn(lambda: [register(client, number) for number in range(5, 10)])
            rewritten = rotate(engine, AccountsBase.metadata, ring(KEY_B, KEY_A), "accounts", batch=2, state=state)
            writer.wait()
        engine.dispose()
        both.stop()
    assert rewritten > 0
    assert "orders: 1 rows re-encrypted" in run_cli(tmp_path, db_uris, f"{KEY_B},{KEY_A}", "orders").stderr

    assert f"pe1.{kid_a}." not in stored_text(accounts_uri) + stored_text(orders_uri)
    assert f"pe1.{kid_b}." in stored_text(accounts_uri)
    with config.patch(keys(KEY_B)):  # A removed
        container_factory(AccountsService).start()
        with ServiceRpcClient("accounts") as client:
            for number in range(1, 10):
                assert client.authenticate(f"user{number}@example.com", "correct-horse")["name"] == f"User {number}"
            assert client.get_user(users[3]["id"])["phone"] == "+447700900003"
    assert read_order_address(orders_uri, ring(KEY_B), order_id) == ADDRESS
    assert "orders: 0 rows re-encrypted" in run_cli(tmp_path, db_uris, KEY_B, "orders").stderr  # a rerun is a no-op
