"""gateway.freshness: a client's write positions outlive its request, for its next reads (read-your-writes)."""

import pytest
from nameko import config
from werkzeug.wrappers import Request

from common.replicas import POSITIONS_KEY
from gateway.freshness import CLIENT_ENV, ClientPositions


@pytest.fixture(params=["local", "redis"])
def positions(request):
    uri = request.getfixturevalue("redis_uri") if request.param == "redis" else None
    store = ClientPositions(uri, ttl=60)
    yield store
    store.close()


def request_of(client):
    return Request({CLIENT_ENV: client})


def context(positions, client):
    data = {"correlation_id": "r"}
    positions.before_worker(request_of(client), data)
    return data


def test_a_write_learnt_in_one_request_goes_with_the_clients_next(positions):
    assert context(positions, "user:7") == {"correlation_id": "r"}
    request = request_of("user:7")
    worker_data = {"correlation_id": "r1"}
    positions.before_worker(request, worker_data)
    worker_data[POSITIONS_KEY] = {"orders": "1-1-42"}  # what the write's reply brought (common.rpc)
    positions.after_worker(request, worker_data)
    assert context(positions, "user:7")[POSITIONS_KEY] == {"orders": "1-1-42"}
    assert POSITIONS_KEY not in context(positions, "user:8")  # another client's reads do not wait for it


def test_nothing_is_stored_when_the_worker_learnt_nothing(positions):
    request = request_of("ip:127.0.0.1")
    positions.before_worker(request, {})
    positions.after_worker(request, {"correlation_id": "r1"})
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
