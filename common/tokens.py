"""Access tokens (PyJWT, HS256): the one place that signs and verifies them, for the gateway and the inventory gRPC
API alike (same secret, expiry, leeway and claims).

Tokens carry ``sub`` (the user id as a string), ``role``, ``exp``, ``iat`` and ``jti``; a token used before its
``iat``/``nbf`` (beyond ``LEEWAY_SECONDS`` of clock skew) is refused. A valid signature is not enough: callers also
check that the account still exists (``gateway.auth.Auth``, ``inventory_grpc.auth``).
"""

import logging
import time
import uuid

import jwt
from nameko import config
from nameko.exceptions import ConfigurationError

from common.errors import Unauthorized

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "role", "exp", "iat", "jti"]
ROLES = ("customer", "admin")
MIN_SECRET_LENGTH = 32
STRICT_ENVIRONMENTS = ("uat", "prod")
LENIENT_ENVIRONMENTS = ("dev", "test", "bench")  # on a developer's machine, with config/dev.yml's secret
# Secrets published in this repository (config/dev.yml, tests/conftest.py, k8s/base/secret.yaml): anyone can sign
# tokens with them, so only a machine of ours may use them.
KNOWN_SECRETS = frozenset({
    "dev-only-jwt-secret-change-me-0123456789abcdef",
    "test-secret-key-that-is-long-enough-for-hs256",
    "change-me-to-a-random-64-character-string",
})
PLACEHOLDER_MARKS = ("changeme", "change-me", "change_me", "replace-me", "replaceme", "placeholder", "dev-only")
DEFAULT_TTL_SECONDS = 3600
DEFAULT_USER_CACHE_SECONDS = 30
LEEWAY_SECONDS = 30  # clock skew tolerated on exp, iat and nbf between replicas


class InvalidToken(Unauthorized):
    code = "invalid_token"


class TokenExpired(Unauthorized):
    code = "token_expired"


def jwt_settings():
    """``(secret, ttl)`` from config; refuses a missing secret, and a weak one outside dev/test."""
    secret = config.get("JWT_SECRET") or ""
    environment = str(config.get("ENVIRONMENT") or "dev").lower()
    if not secret:
        raise ConfigurationError("JWT_SECRET is not set: the gateway cannot sign tokens")
    if environment not in LENIENT_ENVIRONMENTS and is_known_secret(secret):
        raise ConfigurationError(
            f"JWT_SECRET is a published default or a placeholder; set a random secret of your own in {environment}")
    if len(secret) < MIN_SECRET_LENGTH:
        if environment in STRICT_ENVIRONMENTS:
            raise ConfigurationError(
                f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters in {environment}")
        log.warning("JWT_SECRET is shorter than %s characters; acceptable in %s only",
                    MIN_SECRET_LENGTH, environment)
    ttl = int(config.get("JWT_TTL_SECONDS") or DEFAULT_TTL_SECONDS)
    if ttl <= 0:
        raise ConfigurationError("JWT_TTL_SECONDS must be positive")
    return secret, ttl


def is_known_secret(secret):
    folded = secret.strip().lower()
    return secret in KNOWN_SECRETS or any(mark in folded for mark in PLACEHOLDER_MARKS)


def issue_token(user, secret, ttl, now=None):
    """The ``POST /auth/token`` answer for ``user``."""
    issued_at = int(now if now is not None else time.time())
    claims = {"sub": str(user["id"]), "role": user["role"], "iat": issued_at,
              "exp": issued_at + ttl, "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}


def decode_token(token, secret):
    """The claims of a token we signed and that has not expired; ``InvalidToken``/``TokenExpired`` otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                            options={"require": REQUIRED_CLAIMS})
    except jwt.ExpiredSignatureError:
        raise TokenExpired("The access token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("The access token is not valid yet.") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("The access token is not valid.") from None
    if not str(claims["sub"]).isdigit() or claims["role"] not in ROLES:
        raise InvalidToken("The access token is not valid.")
    return claims


def bearer_value(header):
    """The token of an ``Authorization: Bearer <token>`` header (HTTP) or metadata value (gRPC)."""
    scheme, _, token = (header or "").partition(" ")
    if not header:
        raise InvalidToken("This resource needs an access token (Authorization: Bearer <token>).")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Send the access token as 'Authorization: Bearer <token>'.")
    return token.strip()
