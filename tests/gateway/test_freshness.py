"""gateway.freshness: a client's write positions outlive its request, for its next reads (read-your-writes)."""

import pytest
from nameko import config

from common.replicas import POSITIONS_KEY
from gateway.freshness import ClientPositions


@pytest.fixture(params=["local", "redis"])
def positions(request):
    uri = request.getfixturevalue("redis_uri") if request.param == "redis" else None
    store = ClientPositions(uri, ttl=60)
    yield store
    store.close()


def test_a_write_learnt_in_one_request_goes_with_the_clients_next(positions):
    assert positions.context_for("user:7") == {}
    worker_data = {"correlation_id": "r1", POSITIONS_KEY: {"orders": "1-1-42"}}
    positions.after_worker("user:7", worker_data, seen=None)
    assert positions.context_for("user:7") == {POSITIONS_KEY: {"orders": "1-1-42"}}
    assert positions.context_for("user:8") == {}  # another client's reads do not wait for it


def test_nothing_is_stored_when_the_worker_learnt_nothing(positions):
    positions.after_worker("ip:127.0.0.1", {"correlation_id": "r1"}, seen=None)
    assert positions.recall("ip:127.0.0.1") is None


def test_without_replicas_the_gateway_keeps_nothing():
    with config.patch({"DB_REPLICA_URIS": {"orders:Base": ""}}):
        assert ClientPositions.from_config() is None
    with config.patch({"DB_REPLICA_URIS": {"orders:Base": "mysql+pymysql://r/orders"}}):
        store = ClientPositions.from_config()
        assert store is not None
        store.close()


def test_an_unreachable_store_loses_the_memory_not_the_request():
    store = ClientPositions("redis://127.0.0.1:1/0", ttl=60)
    store.remember("user:1", {"orders": "1-1-1"})
    assert store.recall("user:1") is None
