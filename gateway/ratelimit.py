"""Rate limits per client and per route class, with the ``limits`` library.

``RATE_LIMITS`` maps a route class to a limit in ``limits``' notation (``"10/minute"``, ``"100 per hour"``)::

    RATE_LIMITS: {auth: 10/minute, writes: 120/minute, reads: 600/minute, orders: 30/minute}

A route's class is declared with ``@api(rate_limit="...")`` or derived (``route_class``); a class without a limit,
and every route when ``RATE_LIMITS`` is absent, is not limited. The client is the user id of a valid bearer token,
else the client IP (``TRUSTED_PROXY_COUNT`` proxies in ``X-Forwarded-For`` are trusted, default none). Counters
live in Redis when ``REDIS_URI`` is set, so every gateway replica shares one budget, in process otherwise.
``RATE_LIMIT_STRATEGY`` is ``moving-window`` (default), ``fixed-window`` or ``sliding-window-counter``. The limit
is checked before the request takes a worker; a storage outage lets requests through (logged), it never fails
them.
"""

import logging
import math
import time
from dataclasses import dataclass

from limits import parse
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import STRATEGIES
from nameko import config
from nameko.exceptions import ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_STRATEGY = "moving-window"
KEY_PREFIX = "pos-gateway-ratelimit"
EXEMPT_TAGS = {"Operations", "Documentation"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def route_class(spec):
    """The limit a route counts against: ``auth`` (logins, sign-ups), ``orders`` (order writes), ``writes``,
    ``reads``; ``None`` for probes, metrics and the documentation."""
    if spec.rate_limit is not None:
        return spec.rate_limit or None
    if EXEMPT_TAGS & set(spec.tags):
        return None
    if spec.url.startswith("/auth/") and spec.method in WRITE_METHODS:
        return "auth"
    if spec.url.startswith("/orders") and spec.method in WRITE_METHODS:
        return "orders"
    return "writes" if spec.method in WRITE_METHODS else "reads"


@dataclass
class Quota:
    """One hit's outcome, and the ``X-RateLimit-*`` headers that tell the client about it."""

    allowed: bool
    limit: int
    remaining: int
    reset_in: int

    def headers(self):
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(self.reset_in)}
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_in, 1))
        return headers


class RateLimiter:
    def __init__(self, limits, storage, strategy=DEFAULT_STRATEGY):
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"RATE_LIMIT_STRATEGY must be one of {sorted(STRATEGIES)}")
        try:
            self.limits = {name: parse(str(value)) for name, value in (limits or {}).items() if value}
        except ValueError as exc:
            raise ConfigurationError(f"RATE_LIMITS: {exc}") from None
        self.storage = storage
        self.strategy = STRATEGIES[strategy](storage)

    @classmethod
    def from_config(cls):
        uri = config.get("REDIS_URI")
        storage = RedisStorage(uri, key_prefix=KEY_PREFIX, socket_timeout=2, socket_connect_timeout=2) \
            if uri else MemoryStorage()
        return cls(config.get("RATE_LIMITS"), storage,
                   config.get("RATE_LIMIT_STRATEGY") or DEFAULT_STRATEGY)

    def hit(self, route_class_name, client):
        """Count one request of ``client`` against its class; ``None`` if that class has no limit."""
        item = self.limits.get(route_class_name) if route_class_name else None
        if item is None:
            return None
        try:
            allowed = self.strategy.hit(item, route_class_name, client)
            stats = self.strategy.get_window_stats(item, route_class_name, client)
        except Exception:
            log.warning("rate limit storage unavailable; letting the request through", exc_info=True)
            return None
        return Quota(allowed, item.amount, max(stats.remaining, 0),
                     max(math.ceil(stats.reset_time - time.time()), 0))


def client_address(request, trusted_proxies=0):
    """The client's IP: ``REMOTE_ADDR``, or the address the n-th trusted proxy saw (``X-Forwarded-For``)."""
    if trusted_proxies > 0:
        forwarded = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")
                     if hop.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    return request.remote_addr or "unknown"
