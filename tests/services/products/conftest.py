"""The products service on the real broker and a migrated database, an RPC client, and an event recorder."""

import pytest
from nameko import config
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient

from services.products.service import ProductsService

received = []


class CatalogueRecorder:
    """Stands in for every consumer of the catalogue's events."""

    name = "catalogue_recorder"

    @event_handler("products", "category.created")
    @event_handler("products", "category.updated")
    @event_handler("products", "category.deleted")
    @event_handler("products", "product.created")
    @event_handler("products", "product.updated")
    @event_handler("products", "product.deleted")
    def record(self, envelope):
        received.append(envelope)


@pytest.fixture(params=["local", "redis"])
def cache_backend(request):
    """Runs a test with the in-process cache and again with Redis."""
    if request.param == "local":
        with config.patch({"REDIS_URI": None}):
            yield "local"
    else:
        redis_uri = request.getfixturevalue("redis_uri")
        with config.patch({"REDIS_URI": redis_uri}):
            yield "redis"


@pytest.fixture
def products(service_config, container_factory):
    container = container_factory(ProductsService)
    container.start()
    return container


@pytest.fixture
def rpc(products):
    with ServiceRpcClient("products") as client:
        yield client


@pytest.fixture
def events(service_config, container_factory):
    """Catalogue events received so far (the recorder starts before the products service publishes)."""
    received.clear()
    container_factory(CatalogueRecorder).start()
    return received
