"""``common.cache``: a fill that raced a delete never brings the deleted entry back, on either backend."""

import pytest

from common.cache import MISSING, CacheClient, LocalBackend, RedisBackend


@pytest.fixture(params=["local", "redis"])
def backend(request):
    if request.param == "local":
        yield LocalBackend(ttl=60)
        return
    backend = RedisBackend(request.getfixturevalue("redis_uri"), ttl=60)
    yield backend
    backend.clear_prefix("test-cache:")
    backend.client.close()


def client(backend):
    return CacheClient(backend, "test-cache", {"hits": 0, "misses": 0})


def test_a_fill_after_a_concurrent_delete_is_dropped(backend):
    reader, writer = client(backend), client(backend)
    writer.set("product:1", {"price": "1.00"})
    writer.delete("product:1")  # a write committed: the entry goes
    assert reader.get("product:1") is MISSING  # the reader misses and loads the row...
    writer.delete("product:1")  # ...while another write commits and deletes the entry again
    reader.set("product:1", {"price": "1.00"})  # the reader's copy is older than that write
    assert client(backend).get("product:1") is MISSING


def test_a_fill_with_no_delete_in_between_is_kept(backend):
    reader = client(backend)
    assert reader.get("product:2") is MISSING
    reader.set("product:2", {"price": "2.00"})
    assert client(backend).get("product:2") == {"price": "2.00"}
    client(backend).delete("product:2")
    again = client(backend)
    assert again.get("product:2") is MISSING
    again.set("product:2", {"price": "2.50"})  # a later fill after the delete is fine
    assert client(backend).get("product:2") == {"price": "2.50"}


def test_get_or_load_does_not_cache_a_load_that_a_delete_overtook(backend):
    reader, writer = client(backend), client(backend)

    def load_while_a_write_commits():
        writer.delete("product:3")
        return {"price": "old"}

    assert reader.get_or_load("product:3", load_while_a_write_commits) == {"price": "old"}
    assert client(backend).get("product:3") is MISSING
    assert client(backend).get_or_load("product:3", lambda: {"price": "new"}) == {"price": "new"}
    assert client(backend).get("product:3") == {"price": "new"}


def test_a_set_without_a_get_stores_unconditionally(backend):
    client(backend).delete("product:4")
    client(backend).set("product:4", {"price": "4.00"})
    assert client(backend).get("product:4") == {"price": "4.00"}
