"""JWT bearer tokens (PyJWT, HS256) and the ``Auth`` dependency that checks them on every protected route.

Tokens carry ``sub`` (the user id as a string), ``role``, ``exp``, ``iat`` and ``jti``; a token used before its
``iat``/``nbf`` (beyond ``LEEWAY_SECONDS`` of clock skew) is refused. A valid signature is not enough: the account
must still exist, so the gateway asks ``accounts.get_user`` — through a short-lived cache, so a busy client does
not cost an RPC hop per request. Accounts' ``user.deleted`` and ``user.erased`` events reach every gateway replica
(``AccountEvents``, a broadcast handler) and lock the account out at once; the cache TTL is only the fallback for a
missed event (then ``accounts.get_user`` answers ``user_not_found``).
"""

import logging
import time
import uuid

import jwt
from nameko import config
from nameko.events import BROADCAST, event_handler
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider

from common.cache import MISSING, CacheClient, LocalBackend, RedisBackend
from common.errors import Forbidden, NotFound, Unauthorized

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


def bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise InvalidToken("This resource needs an access token (Authorization: Bearer <token>).")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Send the access token as 'Authorization: Bearer <token>'.")
    return token.strip()


class Authenticator:
    """What a gateway worker sees as ``self.auth``."""

    def __init__(self, provider, worker_ctx):
        self.provider = provider
        self.worker_ctx = worker_ctx

    def issue_token(self, user):
        return issue_token(user, self.provider.secret, self.provider.ttl)

    def authenticate(self, request, level="user"):
        """The caller's account for a route that needs ``level`` (``"user"`` or ``"admin"``)."""
        claims = decode_token(bearer_token(request), self.provider.secret)
        user = self.current_user(int(claims["sub"]))
        if level == "admin" and user.get("role") != "admin":
            raise Forbidden("This action needs the admin role.", code="forbidden")
        return user

    def current_user(self, user_id):
        if self.provider.users.get(f"deleted:{user_id}") is not MISSING:
            raise InvalidToken("The account of this access token no longer exists.")
        cached = self.provider.users.get(f"user:{user_id}")
        if cached is not MISSING:
            return cached
        accounts = getattr(self.worker_ctx.service, self.provider.accounts_attr)
        try:
            user = accounts.get_user(user_id)
        except NotFound:
            raise InvalidToken("The account of this access token no longer exists.") from None
        self.provider.users.set(f"user:{user_id}", user)
        return user

    def forget_user(self, user_id):
        """Lock a deleted account out now; the marker outlives a concurrent lookup that re-caches the user."""
        self.provider.users.set(f"deleted:{user_id}", True)
        self.provider.users.delete(f"user:{user_id}")


class Auth(DependencyProvider):
    """Declare beside a ``ServiceRpc("accounts")``; the gateway does not start without a usable secret."""

    def __init__(self, accounts_service="accounts"):
        self.accounts_service = accounts_service

    def setup(self):
        self.secret, self.ttl = jwt_settings()
        self.accounts_attr = self.find_accounts_rpc()
        ttl = int(config.get("AUTH_USER_CACHE_SECONDS") or DEFAULT_USER_CACHE_SECONDS)
        uri = config.get("REDIS_URI")
        backend = RedisBackend(uri, ttl) if uri else LocalBackend(ttl, maxsize=10_000)
        self.users = CacheClient(backend, f"{self.container.service_name}:auth", {"hits": 0, "misses": 0})

    def find_accounts_rpc(self):
        for provider in self.container.dependencies:
            if getattr(provider, "target_service", None) == self.accounts_service:
                return provider.attr_name
        raise ConfigurationError(
            f"Auth needs a ServiceRpc('{self.accounts_service}') on {self.container.service_name}")

    def get_dependency(self, worker_ctx):
        return Authenticator(self, worker_ctx)


class AccountEvents:
    """Gateway mixin: every replica (a broadcast queue each) forgets an account as soon as it is deleted or erased."""

    @event_handler("accounts", "user.deleted", handler_type=BROADCAST, reliable_delivery=False)
    def forget_deleted_user(self, envelope):
        self.auth.forget_user(int(envelope["data"]["id"]))

    @event_handler("accounts", "user.erased", handler_type=BROADCAST, reliable_delivery=False)
    def forget_erased_user(self, envelope):
        self.auth.forget_user(int(envelope["data"]["id"]))
