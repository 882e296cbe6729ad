"""The data keyring: authenticated encryption with key ids, rotation order, the blind index, and clear refusals."""

import os
from pathlib import Path

import pytest
from nameko.cli.utils.config import load_config

from common.crypto import Keyring, KeyringError, generate_key, key_id, parse_keys, stored_key_id

INDEX_KEY = "an-index-key-for-these-tests-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def keyring(*keys):
    return Keyring.from_config({"DATA_ENCRYPTION_KEYS": ",".join(keys), "DATA_INDEX_KEY": INDEX_KEY})


def test_a_value_is_stored_under_the_first_key_and_reads_back_only_for_its_column():
    key_a = generate_key()
    ring = keyring(key_a)
    stored = ring.encrypt("ann@example.com", "users.email")

    assert "ann@example.com" not in stored and stored.startswith("pe1.")
    assert stored_key_id(stored) == ring.current_id
    assert ring.encrypt("ann@example.com", "users.email") != stored  # a fresh nonce every time
    assert ring.decrypt(stored, "users.email") == "ann@example.com"
    with pytest.raises(KeyringError, match="does not authenticate"):
        ring.decrypt(stored, "users.name")  # moved into another column
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(KeyringError, match="does not authenticate"):
        ring.decrypt(tampered, "users.email")


def test_the_first_key_encrypts_and_every_key_decrypts():
    key_a, key_b = generate_key(), generate_key()
    under_a = keyring(key_a).encrypt("Ann Lee", "users.name")
    rotating = keyring(key_b, key_a)

    assert rotating.decrypt(under_a, "users.name") == "Ann Lee"
    assert not rotating.is_current(under_a)
    under_b = rotating.encrypt("Ann Lee", "users.name")
    assert rotating.is_current(under_b) and stored_key_id(under_b) == rotating.current_id
    with pytest.raises(KeyringError, match=f"key id {stored_key_id(under_b)}"):
        keyring(key_a).decrypt(under_b, "users.name")
    with pytest.raises(KeyringError, match="not encrypted"):
        rotating.decrypt("Ann Lee", "users.name")


def test_the_blind_index_matches_the_same_email_however_typed_and_depends_on_its_key():
    ring = keyring(generate_key())
    other = Keyring.from_config({"DATA_ENCRYPTION_KEYS": generate_key(), "DATA_INDEX_KEY": INDEX_KEY + "x"})

    assert ring.blind_index(" Ann@Example.COM ") == ring.blind_index("ann@example.com")
    assert ring.blind_index("ann@example.com") != ring.blind_index("bob@example.com")
    assert ring.blind_index("ann@example.com") != other.blind_index("ann@example.com")
    assert "ann" not in ring.blind_index("ann@example.com")


@pytest.mark.parametrize("value, message", [
    (None, "DATA_ENCRYPTION_KEYS is not set"), ("", "DATA_ENCRYPTION_KEYS is not set"),
    ("not-a-key", "key 1 is not 32 bytes"), (f"{generate_key()},c2hvcnQ=", "key 2 is not 32 bytes"),
])
def test_missing_or_malformed_keys_are_refused_with_what_to_do(value, message):
    with pytest.raises(KeyringError, match=message):
        Keyring.from_config({"DATA_ENCRYPTION_KEYS": value, "DATA_INDEX_KEY": INDEX_KEY})


def test_a_short_index_key_is_refused():
    with pytest.raises(KeyringError, match="DATA_INDEX_KEY"):
        Keyring.from_config({"DATA_ENCRYPTION_KEYS": generate_key(), "DATA_INDEX_KEY": "short"})


def test_key_ids_come_from_the_keys():
    first, second = parse_keys(f"{generate_key()}, {generate_key()}")
    assert key_id(first) != key_id(second) and len(key_id(first)) == 8


def config_file(environment, monkeypatch):
    for name in ("DATA_ENCRYPTION_KEYS", "DATA_INDEX_KEY"):
        monkeypatch.delenv(name, raising=False)
    with open(ROOT / "config" / f"{environment}.yml") as handle:
        return load_config(handle)


@pytest.mark.parametrize("environment", ["uat", "prod"])
def test_uat_and_prod_have_no_key_and_refuse_without_one(environment, monkeypatch):
    with pytest.raises(KeyringError, match="DATA_ENCRYPTION_KEYS is not set"):
        Keyring.from_config(config_file(environment, monkeypatch))
    monkeypatch.setenv("DATA_ENCRYPTION_KEYS", generate_key())
    monkeypatch.setenv("DATA_INDEX_KEY", os.urandom(24).hex())
    with open(ROOT / "config" / f"{environment}.yml") as handle:
        assert Keyring.from_config(load_config(handle)).encrypt("x", "t.c")


def test_dev_has_a_documented_default_key(monkeypatch):
    ring = Keyring.from_config(config_file("dev", monkeypatch))
    assert ring.decrypt(ring.encrypt("ann@example.com", "users.email"), "users.email") == "ann@example.com"
