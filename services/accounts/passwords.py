"""Argon2id password hashing, run on a real OS thread so a slow hash never stalls the other workers.

Never hash inside an open transaction: on SQLite the transaction holds the write lock, and a greenlet that
yields while holding it makes every other writer in the process spin in SQLite's busy handler.
Parameters come from ``ARGON2_TIME_COST`` / ``ARGON2_MEMORY_COST`` / ``ARGON2_PARALLELISM`` (argon2-cffi's
RFC 9106 defaults when unset); stored hashes made with other parameters are upgraded at the next login.
"""

from functools import lru_cache

from argon2 import DEFAULT_MEMORY_COST, DEFAULT_PARALLELISM, DEFAULT_TIME_COST, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from nameko import config


def hasher():
    return PasswordHasher(
        time_cost=int(config.get("ARGON2_TIME_COST") or DEFAULT_TIME_COST),
        memory_cost=int(config.get("ARGON2_MEMORY_COST") or DEFAULT_MEMORY_COST),
        parallelism=int(config.get("ARGON2_PARALLELISM") or DEFAULT_PARALLELISM),
    )


def hash_password(password):
    return tpool.execute(hasher().hash, password)


def verify_password(password_hash, password):
    try:
        return tpool.execute(hasher().verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash):
    return hasher().check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def _decoy_hash():
    return hash_password("decoy password that matches nothing")


def waste_a_verification(password):
    """Spend what a real check costs, so timing does not tell which emails have accounts."""
    verify_password(_decoy_hash(), password)
