"""Who may call: an admin's access token in the ``authorization`` metadata, checked as the gateway checks it.

The token rules are ``common.tokens`` (the gateway's own: secret, expiry, leeway, claims). The account must still
exist and be an admin: ``accounts.get_user`` over RPC, cached for ``AUTH_USER_CACHE_SECONDS`` like the gateway's
cache, and forgotten at once when accounts announce ``user.deleted`` (``forget_user``, fed by ``feed.EventFeed``).
"""

import threading

from cachetools import TTLCache
from nameko import config

from common.errors import Forbidden, NotFound
from common.tokens import DEFAULT_USER_CACHE_SECONDS, InvalidToken, bearer_value, decode_token, jwt_settings

MAX_CACHED_USERS = 10_000


class AdminCheck:
    def __init__(self, accounts_rpc):
        self.accounts = accounts_rpc
        self.secret, _ = jwt_settings()
        ttl = int(config.get("AUTH_USER_CACHE_SECONDS") or DEFAULT_USER_CACHE_SECONDS)
        self.users = TTLCache(MAX_CACHED_USERS, ttl)
        # Deleted accounts stay locked out for longer than any lookup that began before the event could re-cache.
        self.deleted = TTLCache(MAX_CACHED_USERS, max(ttl, 60) * 2)
        self.lock = threading.Lock()

    def admin(self, metadata):
        """The caller's account; ``Unauthorized`` (no, bad, expired token; account gone) or ``Forbidden``."""
        header = next((value for key, value in metadata if key == "authorization"), "")
        claims = decode_token(bearer_value(header), self.secret)
        user = self.current_user(int(claims["sub"]))
        if user.get("role") != "admin":
            raise Forbidden("The inventory API needs the admin role.", code="forbidden")
        return user

    def current_user(self, user_id):
        with self.lock:
            if user_id in self.deleted:
                raise InvalidToken("The account of this access token no longer exists.")
            user = self.users.get(user_id)
        if user is not None:
            return user
        try:
            user = self.accounts.get_user(user_id)
        except NotFound:
            raise InvalidToken("The account of this access token no longer exists.") from None
        with self.lock:
            if user_id not in self.deleted:
                self.users[user_id] = user
        return user

    def forget_user(self, user_id):
        with self.lock:
            self.deleted[user_id] = True
            self.users.pop(user_id, None)
