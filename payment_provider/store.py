"""The provider's own payments, one row per idempotency key, in SQLite (stdlib: the provider is no Nameko service)."""

import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

AUTHORIZED, DECLINED, CAPTURED, VOIDED, REFUNDED = "AUTHORIZED", "DECLINED", "CAPTURED", "VOIDED", "REFUNDED"

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    idempotency_key TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '',
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
COLUMNS = ("idempotency_key", "reference", "status", "failure_reason", "amount", "currency", "token",
           "created_at", "updated_at")


def now():
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class InvalidState(Exception):
    pass


class PaymentStore:
    """Thread-safe: the grpcio server calls it from its worker threads, one statement group at a time."""

    def __init__(self, path):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(SCHEMA)
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            return self._get(key)

    def _get(self, key):
        row = self.connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM payments WHERE idempotency_key = ?", (key,)).fetchone()
        return dict(zip(COLUMNS, row, strict=True)) if row else None

    def create(self, key, status, amount, currency, token, failure_reason=""):
        """Insert the payment for ``key`` unless one exists; either way return the stored one."""
        with self.lock:
            existing = self._get(key)
            if existing is not None:
                return existing
            moment = now()
            self.connection.execute(
                f"INSERT INTO payments ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                (key, f"pay_{uuid.uuid4().hex[:24]}", status, failure_reason, amount, currency, token,
                 moment, moment))
            return self._get(key)

    def transition(self, key, allowed, target):
        """Move the payment to ``target`` if its status is in ``allowed``; already there is a repeat, not an error."""
        with self.lock:
            payment = self._get(key)
            if payment is None:
                raise KeyError(key)
            if payment["status"] == target:
                return payment
            if payment["status"] not in allowed:
                raise InvalidState(f"payment {key} is {payment['status']}, cannot become {target}")
            self.connection.execute(
                "UPDATE payments SET status = ?, updated_at = ? WHERE idempotency_key = ?", (target, now(), key))
            return self._get(key)

    def close(self):
        self.connection.close()
