"""JWT bearer tokens (PyJWT, HS256) and the ``Auth`` dependency that checks them on every protected route.

Tokens carry ``sub`` (the user id as a string), ``role``, ``exp``, ``iat`` and ``jti``; a token used before its
``iat``/``nbf`` (beyond ``LEEWAY_SECONDS`` of clock skew) is refused. A valid signature is not enough: the account
must still exist, so the gateway asks ``accounts.get_user`` — through a short-lived cache, so a busy client does
not cost an RPC hop per request. Accounts' ``user.deleted`` and ``user.erased`` events reach every gateway replica
(``AccountEvents``, a broadcast handler) and lock the account out at once; the cache TTL is only the fallback for a
missed event (then ``accounts.get_user`` answers ``user_not_found``).
"""

from nameko import config
from nameko.events import BROADCAST, EventHandler
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider

from common.amqp import ReadAheadConsumer
from common.cache import MISSING, CacheClient, LocalBackend, RedisBackend
from common.errors import Forbidden, NotFound
from common.tokens import (  # noqa: F401  (the token rules live in common.tokens; re-exported for the gateway)
    ALGORITHM,
    DEFAULT_TTL_SECONDS,
    DEFAULT_USER_CACHE_SECONDS,
    KNOWN_SECRETS,
    LEEWAY_SECONDS,
    InvalidToken,
    TokenExpired,
    bearer_value,
    decode_token,
    is_known_secret,
    issue_token,
    jwt_settings,
)


def bearer_token(request):
    return bearer_value(request.headers.get("Authorization", ""))


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


class AccountEvent(EventHandler):
    """A broadcast handler (a queue per replica) with our consumer: it reads ahead, drains on stop and tells
    readiness whether it consumes (common.amqp)."""

    consumer_cls = ReadAheadConsumer

    def __init__(self, source_service, event_type, **kwargs):
        super().__init__(source_service, event_type, handler_type=BROADCAST, reliable_delivery=False, **kwargs)


class AccountEvents:
    """Gateway mixin: every replica (a broadcast queue each) forgets an account as soon as it is deleted or erased."""

    @AccountEvent.decorator("accounts", "user.deleted")
    def forget_deleted_user(self, envelope):
        self.auth.forget_user(int(envelope["data"]["id"]))

    @AccountEvent.decorator("accounts", "user.erased")
    def forget_erased_user(self, envelope):
        self.auth.forget_user(int(envelope["data"]["id"]))
