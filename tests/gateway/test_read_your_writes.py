"""Through the gateway: a client reads its own write at once though the replica is seconds behind, while its reads
are served by the replica once it has them (gateway/freshness.py, common.replicas)."""

import pytest
from nameko import config
from prometheus_client import REGISTRY

from common.migrations import upgrade
from common.timers import wait_for
from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.products.service import ProductsService
from tests.conftest import BASE_CONFIG


def reads(target):
    return REGISTRY.get_sample_value("pos_db_reads_total", {"service": "products", "target": target}) or 0


@pytest.fixture
def gateway(rabbit_config, web_config, replicated_databases, mariadb_replication, container_factory):
    uris = replicated_databases(["accounts", "products"])
    settings = {**BASE_CONFIG, "DB_URIS": {f"{name}:Base": primary for name, (primary, _) in uris.items()},
                "DB_REPLICA_URIS": {"products:Base": uris["products"][1]},
                "DB_REPLICA_MAX_LAG_SECONDS": 30, "DB_REPLICA_CHECK_SECONDS": 0.1, "DB_REPLICA_WAIT_SECONDS": 0.3}
    with config.patch(settings):
        for service in ("accounts", "products"):
            upgrade(service)
        mariadb_replication.wait_until_caught_up()
        for cls in (AccountsService, ProductsService, GatewayService):
            container_factory(cls).start()
        yield mariadb_replication


def test_a_client_reads_its_own_write_through_a_lagging_replica(gateway, http):
    token = http.post("/auth/token", json={"email": "admin@example.com", "password": "admin-password-1"}).json()
    token = token["access_token"]
    replica = f"127.0.0.1:{gateway.replica.port}"
    gateway.delay(2)
    created = http.post("/categories", json={"name": "Lamps"}, token=token)
    assert created.status_code == 201, created.text
    before = reads("primary")
    listed = http.get("/categories", token=token)  # the next request, the same client
    assert [category["name"] for category in listed.json()["items"]] == ["Lamps"]
    assert reads("primary") == before + 1  # the replica did not have it yet
    gateway.wait_until_caught_up()
    before = reads(replica)
    assert wait_for(lambda: http.get("/categories", token=token).json()["items"], 10)
    assert reads(replica) == before + 1  # caught up: the replica serves the same client again
