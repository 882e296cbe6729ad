"""Read-through cache: an in-process TTL cache by default, Redis when ``REDIS_URI`` is set.

Values are JSON documents. The TTL comes from ``CACHE_TTL_SECONDS`` (per environment in config/).
``SharedCache(namespace)`` reads another service's Redis entries (the gateway serves warm product reads from
``products:product:{id}`` this way); without Redis it gives ``None``, because only a shared cache is invalidated
by its owner's writes.

A fill never brings back what a delete removed: a read that misses loads the row, and meanwhile a write may commit
and delete the entry; putting the loaded copy back would keep the old document for the whole TTL. So every delete
also bumps the key's generation (``<key>#gen``), a read notes the generation it saw, and a worker's ``set`` after its
``get`` stores the value only if the generation is still that one (atomically, in Redis with a Lua script).
"""

import json
import logging
import threading

from cachetools import TTLCache
from nameko import config
from nameko.extensions import DependencyProvider
from prometheus_client.core import CounterMetricFamily

from common.metrics import LiveCollector
from common.tracing import trace_redis

log = logging.getLogger(__name__)

MISSING = object()
UNSEEN = object()  # a set without an earlier get in the same worker: nothing to compare with
GENERATION_SUFFIX = "#gen"


class LocalBackend:
    def __init__(self, ttl, maxsize=100_000):
        self.store = TTLCache(maxsize=maxsize, ttl=ttl)
        self.generations = TTLCache(maxsize=maxsize, ttl=ttl * 2)
        self.lock = threading.Lock()

    def get_versioned(self, key):
        with self.lock:
            return self.store.get(key, MISSING), self.generations.get(key)

    def set(self, key, value, generation=UNSEEN):
        with self.lock:
            if generation is UNSEEN or self.generations.get(key) == generation:
                self.store[key] = value

    def delete(self, *keys):
        with self.lock:
            for key in keys:
                self.store.pop(key, None)
                self.generations[key] = self.generations.get(key, 0) + 1

    def clear_prefix(self, prefix):
        with self.lock:
            for key in [k for k in self.store.keys() if k.startswith(prefix)]:
                self.store.pop(key, None)

    def ping(self):
        return True


# KEYS: the entry, its generation; ARGV: the document, the TTL, the generation the reader saw ("" for none)
SET_IF_GENERATION = """
local generation = redis.call('GET', KEYS[2]) or ''
if generation == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def document(raw):
    return MISSING if raw is None else json.loads(raw)


class RedisBackend:
    def __init__(self, uri, ttl):
        import redis

        self.client = redis.Redis.from_url(uri, socket_timeout=2, socket_connect_timeout=2)
        self.ttl = ttl
        self.set_if_generation = self.client.register_script(SET_IF_GENERATION)

    def get_versioned(self, key):
        raw, generation = self.client.mget(key, key + GENERATION_SUFFIX)
        return document(raw), generation

    def set(self, key, value, generation=UNSEEN):
        if generation is UNSEEN:
            self.client.set(key, json.dumps(value), ex=self.ttl)
        else:
            self.set_if_generation(keys=[key, key + GENERATION_SUFFIX],
                                   args=[json.dumps(value), self.ttl, generation or b""])

    def delete(self, *keys):
        if keys:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(*keys)
                for key in keys:
                    pipe.incr(key + GENERATION_SUFFIX)
                    pipe.expire(key + GENERATION_SUFFIX, self.ttl * 2)  # outlives every entry it guards
                pipe.execute()

    def clear_prefix(self, prefix):
        for key in self.client.scan_iter(match=prefix + "*", count=500):
            self.client.delete(key)

    def ping(self):
        return self.client.ping()


class RedisReadBackend(RedisBackend):
    """``RedisBackend`` whose GETs skip redis-py's pool, for the gateway's hot path.

    redis-py's pool checks every connection it hands out for unread data with a ``select()`` (costly under
    eventlet) and wraps each command in retry and argument-checking layers: together a third of the gateway's CPU
    on a warm product read. Here a GET borrows one of the reader's own idle connections (greenlets switch only on
    I/O, so the list needs no lock); a connection that fails or is interrupted is closed, never reused.
    """

    def __init__(self, uri, ttl):
        super().__init__(uri, ttl)
        self.idle = []

    def get_versioned(self, key):
        """The document and no generation: a reader never fills."""
        connection = self.idle.pop() if self.idle else self.client.connection_pool.make_connection()
        try:
            connection.send_command("GET", key)
            raw = connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        self.idle.append(connection)
        return document(raw), None

    def close(self):
        while self.idle:
            self.idle.pop().disconnect()
        self.client.close()


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
        self.generations = {}  # key -> the generation this worker's last get saw

    def key(self, key):
        return f"{self.namespace}:{key}"

    def get(self, key):
        try:
            value, self.generations[key] = self.backend.get_versioned(self.key(key))
        except Exception:
            log.warning("cache read failed", exc_info=True)
            value = MISSING
        self.stats["hits" if value is not MISSING else "misses"] += 1
        return value

    def set(self, key, value):
        """Store ``value``; after a ``get`` of the same key, only if no delete came in between."""
        try:
            self.backend.set(self.key(key), value, self.generations.pop(key, UNSEEN))
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
    """Exports its hits and misses as ``pos_cache_requests_total{service, result}`` while its container runs."""

    def __init__(self, namespace=None):
        self.namespace = namespace

    def setup(self):
        self.backend = make_backend()
        if isinstance(self.backend, RedisBackend):
            trace_redis(self.backend.client, self.container.service_name)
        self.stats = {"hits": 0, "misses": 0}
        self.namespace = self.namespace or self.container.service_name
        # counted in a plain dict on the read path, turned into a metric only when scraped
        self.collector = LiveCollector(self.collect_metrics)

    def start(self):
        self.collector.register()

    def stop(self):
        self.collector.unregister()

    kill = stop

    def readiness_checks(self, timeout):
        """For ``common.health.Readiness``: Redis answers ``PING`` (the backend's client, its 2 s timeouts)."""
        return {"cache": self.backend.ping} if isinstance(self.backend, RedisBackend) else {}

    def collect_metrics(self):
        requests = CounterMetricFamily("pos_cache_requests", "Cache reads by result", labels=["service", "result"])
        for result in ("hits", "misses"):
            requests.add_metric([self.container.service_name, result], self.stats.get(result, 0))
        yield requests

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
        self.backend = RedisReadBackend(uri, ttl) if uri else None
        if self.backend is not None:  # its GETs bypass the client (and so the spans); its other commands do not
            trace_redis(self.backend.client, self.container.service_name)
        self.stats = {"hits": 0, "misses": 0}
        self.collector = LiveCollector(self.collect_metrics)

    def stop(self):
        super().stop()
        if self.backend is not None:
            self.backend.close()

    def get_dependency(self, worker_ctx):
        return None if self.backend is None else CacheClient(self.backend, self.namespace, self.stats)
