"""The whole system as `make run` starts it (tests/system's harness), the inventory gRPC API among it, and real
grpcio clients: one system for the module."""

import grpc
import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient

from inventory_grpc import protos
from tests.system.conftest import System

pb, pb_grpc = protos()
WATCH_QUEUE = 20


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    system = System(tmp_path_factory.mktemp("system"))
    # Small WatchStock bounds, so a client that stops reading is cut off within a test's patience.
    system.env.update({"INVENTORY_GRPC_WATCH_QUEUE": str(WATCH_QUEUE), "INVENTORY_GRPC_WRITE_TIMEOUT_SECONDS": "2"})
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def channel(system):
    channel = grpc.insecure_channel(system.inventory_grpc_address)
    grpc.channel_ready_future(channel).result(timeout=60)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def stub(channel):
    return pb_grpc.InventoryStub(channel)


@pytest.fixture(scope="module")
def admin(system):
    return system.admin()


@pytest.fixture(scope="module")
def admin_auth(admin):
    return (("authorization", admin.headers["Authorization"]),)


@pytest.fixture(scope="module")
def customer(system):
    return system.customer()


@pytest.fixture
def inventory_rpc(system):
    """The inventory service itself, over the system's broker (to hold stock as an order does)."""
    with config.patch({"AMQP_URI": system.vhost.amqp_uri, "serializer": "json"}):
        with ServiceRpcClient("inventory", timeout=15) as client:
            yield client
