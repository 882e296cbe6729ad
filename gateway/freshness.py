"""Read-your-writes across requests: each client's last write positions (common.replicas), kept for a while.

A write answered over RPC brings the primary's position back into the worker's context data; before the response
leaves, the gateway stores what the worker learnt under the client (``user:<id>`` of a valid token, else
``ip:<address>``, the rate limiter's key) for ``READ_YOUR_WRITES_SECONDS`` (default 60), and puts it into the context
data of that client's next requests, so their reads wait for a replica that has the write, or go to the primary.
In Redis when ``REDIS_URI`` is set (every gateway replica sees it), in process otherwise. Without any
``DB_REPLICA_URIS`` nothing is stored or looked up. A storage outage only loses the memory: reads may then be
older than the client's write by up to the replicas' lag bound, never fail.
"""

import json
import logging

from cachetools import TTLCache
from nameko import config

from common.replicas import POSITIONS_KEY

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 60
KEY_PREFIX = "pos-gateway-positions:"
CLIENT_ENV = "pos.client"  # the rate limiter's client key, set by ``Api.handle_request``
POSITIONS_ENV = "pos.positions"  # what the request started with


def replicas_configured():
    return any(uris for uris in (config.get("DB_REPLICA_URIS") or {}).values())


class ClientPositions:
    def __init__(self, redis_uri, ttl):
        self.ttl = ttl
        self.local = None if redis_uri else TTLCache(maxsize=100_000, ttl=ttl)
        self.redis = None
        if redis_uri:
            import redis

            self.redis = redis.Redis.from_url(redis_uri, socket_timeout=1, socket_connect_timeout=1)

    @classmethod
    def from_config(cls):
        if not replicas_configured():
            return None
        return cls(config.get("REDIS_URI"), int(config.get("READ_YOUR_WRITES_SECONDS") or DEFAULT_SECONDS))

    def recall(self, client):
        try:
            if self.local is not None:
                return self.local.get(client)
            raw = self.redis.get(KEY_PREFIX + client)
            return json.loads(raw) if raw else None
        except Exception:  # noqa: BLE001 -- an outage loses the memory, never the request
            log.warning("cannot read a client's write positions", exc_info=True)
            return None

    def remember(self, client, positions):
        try:
            if self.local is not None:
                self.local[client] = positions
            else:
                self.redis.set(KEY_PREFIX + client, json.dumps(positions), ex=self.ttl)
        except Exception:  # noqa: BLE001
            log.warning("cannot store a client's write positions", exc_info=True)

    def before_worker(self, request, context_data):
        positions = self.recall(request.environ[CLIENT_ENV]) if CLIENT_ENV in request.environ else None
        if positions:
            context_data[POSITIONS_KEY] = positions
        request.environ[POSITIONS_ENV] = positions

    def after_worker(self, request, context_data):
        positions = context_data.get(POSITIONS_KEY)
        if positions and CLIENT_ENV in request.environ and positions != request.environ.get(POSITIONS_ENV):
            self.remember(request.environ[CLIENT_ENV], positions)

    def close(self):
        if self.redis is not None:
            self.redis.close()
