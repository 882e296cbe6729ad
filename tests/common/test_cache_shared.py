"""``SharedCache``: one service reads another's Redis entries through one long-lived client; no Redis, no reads."""

from nameko import config
from nameko.testing.services import dummy, entrypoint_hook

from common.cache import MISSING, Cache, SharedCache
from scripts.tansu import free_port


class Owner:
    name = "products"
    cache = Cache()

    @dummy
    def fill(self, key, value):
        self.cache.set(key, value)

    @dummy
    def forget(self, key):
        self.cache.delete(key)


class Reader:
    name = "reader"
    products_cache = SharedCache("products")

    @dummy
    def read(self, key):
        if self.products_cache is None:
            return "no shared cache"
        value = self.products_cache.get(key)
        return "miss" if value is MISSING else value

    @dummy
    def redis_client(self):
        return self.products_cache.backend.client


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def start(container_factory, *services):
    containers = [container_factory(service) for service in services]
    for container in containers:
        container.start()
    return containers


def test_a_reader_sees_the_owners_entries_and_their_removal(redis_uri, container_factory):
    with config.patch({"REDIS_URI": redis_uri}):
        owner, reader = start(container_factory, Owner, Reader)
        assert call(reader, "read", "product:7") == "miss"
        call(owner, "fill", "product:7", {"id": 7, "price": "1.50"})
        assert call(reader, "read", "product:7") == {"id": 7, "price": "1.50"}
        call(owner, "forget", "product:7")
        assert call(reader, "read", "product:7") == "miss"


def test_every_worker_shares_one_pooled_client(redis_uri, container_factory):
    with config.patch({"REDIS_URI": redis_uri}):
        (reader,) = start(container_factory, Reader)
        first, second = call(reader, "redis_client"), call(reader, "redis_client")
        assert first is second
        assert first.connection_pool is second.connection_pool


def test_without_redis_the_reader_gets_no_cache(container_factory):
    with config.patch({"REDIS_URI": None}):
        owner, reader = start(container_factory, Owner, Reader)
        call(owner, "fill", "product:7", {"id": 7})  # the owner's in-process cache: no one else can see it
        assert call(reader, "read", "product:7") == "no shared cache"


def test_an_unreachable_redis_reads_as_a_miss(container_factory):
    with config.patch({"REDIS_URI": f"redis://127.0.0.1:{free_port()}/0"}):
        (reader,) = start(container_factory, Reader)
        assert call(reader, "read", "product:7") == "miss"


def test_reads_reuse_the_readers_own_connections(redis_uri, container_factory):
    with config.patch({"REDIS_URI": redis_uri}):
        owner, reader = start(container_factory, Owner, Reader)
        call(owner, "fill", "product:8", {"id": 8})
        for _ in range(20):
            assert call(reader, "read", "product:8") == {"id": 8}
        shared = shared_cache(reader)
        assert len(shared.backend.idle) == 1  # one read at a time here: one connection, reused


def test_a_connection_redis_dropped_is_replaced_not_reused(redis_uri, container_factory):
    with config.patch({"REDIS_URI": redis_uri}):
        owner, reader = start(container_factory, Owner, Reader)
        call(owner, "fill", "product:9", {"id": 9})
        assert call(reader, "read", "product:9") == {"id": 9}
        shared = shared_cache(reader)
        (connection,) = shared.backend.idle
        admin = call(reader, "redis_client")
        admin.client_kill_filter(_id=admin_client_id(admin, connection))
        assert call(reader, "read", "product:9") == "miss"  # the failed read degrades to a miss...
        assert connection not in shared.backend.idle  # ...and its connection is gone
        assert call(reader, "read", "product:9") == {"id": 9}  # a new one serves the next read


def shared_cache(container):
    return next(dep for dep in container.dependencies if isinstance(dep, SharedCache))


def admin_client_id(admin, connection):
    port = connection._sock.getsockname()[1]
    return next(client["id"] for client in admin.client_list() if client["addr"].endswith(f":{port}"))
