"""Read-through cache: an in-process TTL cache by default, Redis when ``REDIS_URI`` is set.

Values are JSON documents. The TTL comes from ``CACHE_TTL_SECONDS`` (per environment in config/).
``SharedCache(namespace)`` reads another service's Redis entries (the gateway serves warm product reads from
``products:product:{id}`` this way); without Redis it gives ``None``, because only a shared cache is invalidated
by its owner's writes.
"""

import json
import logging
import threading

from cachetools import TTLCache
from nameko import config
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)

MISSING = object()


class LocalBackend:
    def __init__(self, ttl, maxsize=100_000):
        self.store = TTLCache(maxsize=maxsize, ttl=ttl)
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            return self.store.get(key, MISSING)

    def set(self, key, value):
        with self.lock:
            self.store[key] = value

    def delete(self, *keys):
        with self.lock:
            for key in keys:
                self.store.pop(key, None)

    def clear_prefix(self, prefix):
        with self.lock:
            for key in [k for k in self.store.keys() if k.startswith(prefix)]:
                self.store.pop(key, None)

    def ping(self):
        return True


class RedisBackend:
    def __init__(self, uri, ttl):
        import redis

        self.client = redis.Redis.from_url(uri, socket_timeout=2, socket_connect_timeout=2)
        self.ttl = ttl

    def get(self, key):
        raw = self.client.get(key)
        return MISSING if raw is None else json.loads(raw)

    def set(self, key, value):
        self.client.set(key, json.dumps(value), ex=self.ttl)

    def delete(self, *keys):
        if keys:
            self.client.delete(*keys)

    def clear_prefix(self, prefix):
        for key in self.client.scan_iter(match=prefix + "*", count=500):
            self.client.delete(key)

    def ping(self):
        return self.client.ping()


def make_backend():
    ttl = int(config.get("CACHE_TTL_SECONDS") or 600)
    uri = config.get("REDIS_URI")
    return RedisBackend(uri, ttl) if uri else LocalBackend(ttl)


class CacheClient:
    """What a worker sees: namespaced keys, and a cache outage degrades to a miss, never to an error."""

    def __init__(self, backend, namespace, stats):
        self.backend = backend
        self.namespace = namespace
        self.stats = stats

    def key(self, key):
        return f"{self.namespace}:{key}"

    def get(self, key):
        try:
            value = self.backend.get(self.key(key))
        except Exception:
            log.warning("cache read failed", exc_info=True)
            value = MISSING
        self.stats["hits" if value is not MISSING else "misses"] += 1
        return value

    def set(self, key, value):
        try:
            self.backend.set(self.key(key), value)
        except Exception:
            log.warning("cache write failed", exc_info=True)

    def delete(self, *keys):
        self.backend.delete(*[self.key(key) for key in keys])

    def clear(self, prefix=""):
        self.backend.clear_prefix(self.key(prefix))

    def get_or_load(self, key, load):
        value = self.get(key)
        if value is MISSING:
            value = load()
            if value is not None:
                self.set(key, value)
        return value

    def ping(self):
        return self.backend.ping()


class Cache(DependencyProvider):
    def __init__(self, namespace=None):
        self.namespace = namespace

    def setup(self):
        self.backend = make_backend()
        self.stats = {"hits": 0, "misses": 0}
        self.namespace = self.namespace or self.container.service_name

    def get_dependency(self, worker_ctx):
        return CacheClient(self.backend, self.namespace, self.stats)


class SharedCache(Cache):
    """Read access to the cache ``namespace`` (another service's) when it lives in Redis; ``None`` otherwise.

    The owner fills and invalidates the entries; readers never write. One long-lived Redis client (and its
    connection pool) per provider, shared by every worker.
    """

    def __init__(self, namespace):
        super().__init__(namespace)

    def setup(self):
        uri = config.get("REDIS_URI")
        ttl = int(config.get("CACHE_TTL_SECONDS") or 600)
        self.backend = RedisBackend(uri, ttl) if uri else None
        self.stats = {"hits": 0, "misses": 0}

    def stop(self):
        if self.backend is not None:
            self.backend.client.close()

    def get_dependency(self, worker_ctx):
        return None if self.backend is None else CacheClient(self.backend, self.namespace, self.stats)
