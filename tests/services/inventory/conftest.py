import pytest
from nameko.standalone.rpc import ServiceRpcClient

from services.inventory.service import InventoryService


@pytest.fixture
def inventory_container(service_config, container_factory):
    container = container_factory(InventoryService)
    container.start()
    return container


@pytest.fixture
def inventory(inventory_container):
    with ServiceRpcClient("inventory") as client:
        yield client
