"""Personal data encrypted at rest: AES-256-GCM with key ids, and a keyed blind index for lookups.

``DATA_ENCRYPTION_KEYS`` (config) is a comma-separated list of url-safe base64 32-byte keys: the first encrypts,
every one decrypts, so a key rotates by putting a new one first and re-encrypting (``python -m
scripts.rotate_keys``). A stored value is ``pe1.<key id>.<base64(nonce + ciphertext + tag)>``; the key id is
derived from the key itself, so a wrong key can never be mistaken for the right one. The column's name is the
associated data, so a value copied into another column does not decrypt. ``DATA_INDEX_KEY`` keys the HMAC of
a normalised email (``blind_index``): equal emails give equal digests, so lookups and the unique rule still work
without the address itself being stored.

Where the keyring lives: on the SQLAlchemy engine (its dialect), the one object a ``TypeDecorator`` is handed when
it converts a value. ``common.db.Database`` attaches it at container set-up and checks every encrypted column
(``check_readable``), so a missing or wrong key stops the container before any row is read or written; any other
engine (migrations, scripts, tests) gets its keyring from config the first time it converts a value. No module
global holds a key, and two containers in one process can use different keyrings.
"""

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nameko import config
from sqlalchemy import Text, column, func, select, table
from sqlalchemy.types import TypeDecorator

PREFIX = "pe1."
KEY_ID_LENGTH = 8
NONCE_LENGTH = 12
KEYS_SETTING, INDEX_SETTING = "DATA_ENCRYPTION_KEYS", "DATA_INDEX_KEY"
MIN_INDEX_KEY_LENGTH = 32
GENERATE_HINT = "python -m scripts.rotate_keys --generate-key"


class KeyringError(RuntimeError):
    """The data keys are missing or cannot read what is stored; the message says what to do."""


def key_id(key):
    return hashlib.sha256(b"pos-data-key-id:" + key).hexdigest()[:KEY_ID_LENGTH]


def generate_key():
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Keyring:
    def __init__(self, keys, index_key):
        if not keys:
            raise KeyringError(f"{KEYS_SETTING} holds no key")
        self.ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.current_id = key_id(keys[0])
        self.index_key = index_key

    @classmethod
    def from_config(cls, settings=None):
        settings = config if settings is None else settings
        return cls(parse_keys(settings.get(KEYS_SETTING)), parse_index_key(settings.get(INDEX_SETTING)))

    @property
    def key_ids(self):
        return list(self.ciphers)

    def encrypt(self, plaintext, purpose):
        nonce = os.urandom(NONCE_LENGTH)
        sealed = self.ciphers[self.current_id].encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"{PREFIX}{self.current_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored, purpose):
        kid = stored_key_id(stored)
        if kid is None:
            raise KeyringError(f"{purpose} holds a value that is not encrypted (run the migrations)")
        if kid not in self.ciphers:
            raise KeyringError(f"{purpose} holds a value under key id {kid}, which {KEYS_SETTING} does not hold")
        raw = base64.urlsafe_b64decode(stored[len(PREFIX) + KEY_ID_LENGTH + 1:])
        try:
            return self.ciphers[kid].decrypt(raw[:NONCE_LENGTH], raw[NONCE_LENGTH:], purpose.encode()).decode()
        except InvalidTag:
            raise KeyringError(f"{purpose} holds a value that does not authenticate under key id {kid}") from None

    def is_current(self, stored):
        return stored_key_id(stored) == self.current_id

    def blind_index(self, email):
        """The lookup digest of an email (trimmed, lower-cased), hex."""
        normalised = email.strip().lower().encode()
        return hmac.new(self.index_key, normalised, hashlib.sha256).hexdigest()


def stored_key_id(stored):
    if not isinstance(stored, str) or not stored.startswith(PREFIX):
        return None
    return stored[len(PREFIX):len(PREFIX) + KEY_ID_LENGTH]


def parse_keys(value):
    if value in (None, "", []):
        raise KeyringError(f"{KEYS_SETTING} is not set: personal data cannot be stored or read without it. "
                           f"Make a key with `{GENERATE_HINT}` (docs/operations.md, 'Data encryption keys').")
    items = value if isinstance(value, list) else str(value).split(",")
    keys = []
    for position, item in enumerate((item.strip() for item in items if item.strip()), start=1):
        try:
            key = base64.urlsafe_b64decode(item.encode())
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise KeyringError(f"{KEYS_SETTING}: key {position} is not 32 bytes in url-safe base64 "
                               f"(make one with `{GENERATE_HINT}`)")
        keys.append(key)
    return keys


def parse_index_key(value):
    if not value or len(str(value)) < MIN_INDEX_KEY_LENGTH:
        raise KeyringError(f"{INDEX_SETTING} must be set to at least {MIN_INDEX_KEY_LENGTH} characters "
                           "(it keys the email lookup digest; it never rotates with the data keys)")
    return str(value).encode()


def attach_keyring(engine, keyring):
    engine.dialect.pos_keyring = keyring
    return keyring


def keyring_of(dialect):
    keyring = getattr(dialect, "pos_keyring", None)
    if keyring is None:
        keyring = dialect.pos_keyring = Keyring.from_config()
    return keyring


class Encrypted(TypeDecorator):
    """A text column stored encrypted; ``purpose`` (``"table.column"``) is its associated data."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose):
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value, dialect):
        return None if value is None else keyring_of(dialect).encrypt(value, self.purpose)

    def process_result_value(self, value, dialect):
        return None if value is None else keyring_of(dialect).decrypt(value, self.purpose)


def encrypted_columns(metadata):
    """``(table, [column names], primary key name)`` of every table with an ``Encrypted`` column."""
    found = []
    for tbl in metadata.sorted_tables:
        names = [col.name for col in tbl.columns if isinstance(col.type, Encrypted)]
        if names:
            found.append((tbl.name, names, list(tbl.primary_key.columns)[0].name))
    return found


def check_readable(engine, metadata, keyring):
    """Refuse to go on if any stored value is plain or under a key the keyring lacks (reads only, changes nothing).

    One indexed-less scan per encrypted column at start-up, stopping at the first offender: the price of knowing,
    before serving, that every row can be read.
    """
    prefixes = [f"{PREFIX}{kid}." for kid in keyring.key_ids]
    width = len(prefixes[0])
    with engine.connect() as connection:
        existing = set(engine.dialect.get_table_names(connection))
        for table_name, names, _ in encrypted_columns(metadata):
            if table_name not in existing:
                continue
            for name in names:
                col = column(name, Text)
                offender = connection.scalar(select(col).select_from(table(table_name, col)).where(
                    col.is_not(None), func.substr(col, 1, width).not_in(prefixes)).limit(1))
                if offender is not None:
                    keyring.decrypt(offender, f"{table_name}.{name}")  # raises with the reason


def data_keyring(engine, metadata):
    """The keyring of a service's engine, checked against what is stored; None for a service with nothing
    encrypted (it needs no key)."""
    if not encrypted_columns(metadata):
        return None
    keyring = attach_keyring(engine, Keyring.from_config())
    check_readable(engine, metadata, keyring)
    return keyring


def session_keyring(session):
    return keyring_of(session.get_bind().dialect)
