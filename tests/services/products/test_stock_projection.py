"""``available`` follows inventory's stock events: newest version wins, repeats and stale events change nothing."""

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select

from common.db import make_engine
from common.errors import ValidationFailed
from common.events import make_envelope
from services.products.models import ProcessedEvent


@pytest.fixture
def deliver(products):
    dispatch = event_dispatcher()

    def deliver(event_type, data, envelope=None):
        envelope = envelope or make_envelope(event_type, data.get("product_id"), data, source="inventory")
        with entrypoint_waiter(products, "apply_stock_level") as result:
            dispatch("inventory", event_type, envelope)
        return envelope, result

    return deliver


def stock(product_id, available, version):
    return {"product_id": product_id, "on_hand": available + 1, "reserved": 1, "available": available,
            "low_stock_threshold": 5, "version": version}


def test_the_newest_stock_version_wins_whatever_the_order(cache_backend, rpc, deliver):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20", "initial_stock": 10})
    chair = rpc.create_product({"sku": "CHR-1", "name": "Chair", "price": "45", "initial_stock": 4})
    assert rpc.get_product(lamp["id"])["available"] == 10  # now cached

    deliver("stock.updated", stock(lamp["id"], 10, 1))
    deliver("stock.reserved", {**stock(lamp["id"], 8, 2), "order_id": 7, "quantity": 2})
    assert rpc.get_product(lamp["id"])["available"] == 8
    deliver("stock.committed", stock(lamp["id"], 8, 4))
    deliver("stock.released", {**stock(lamp["id"], 12, 3), "order_id": 9, "quantity": 4})  # late: version 3 < 4
    assert rpc.get_product(lamp["id"])["available"] == 8
    deliver("stock.released", stock(lamp["id"], 0, 5))
    assert rpc.get_product(lamp["id"])["available"] == 0
    assert rpc.search_products({"in_stock": "true"})["total"] == 1

    product = rpc.get_product(lamp["id"])
    assert product["updated_at"] == lamp["updated_at"]  # stock is not a catalogue edit
    assert rpc.get_product(chair["id"])["available"] == 4


def test_a_redelivered_event_changes_nothing_and_needs_no_record(rpc, deliver, service_config):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20", "initial_stock": 10})
    envelope, _ = deliver("stock.updated", stock(lamp["id"], 6, 3))
    deliver("stock.updated", stock(lamp["id"], 5, 4))
    deliver("stock.updated", stock(lamp["id"], 6, 3), envelope=envelope)  # the first one again, after the second
    assert rpc.get_product(lamp["id"])["available"] == 5

    engine = make_engine(service_config["DB_URIS"]["products:Base"])
    with engine.connect() as connection:  # the version decides: no processed-event insert on every stock move
        assert connection.scalar(select(func.count()).select_from(ProcessedEvent)) == 0
    engine.dispose()


def test_malformed_and_unknown_stock_events_are_dropped(rpc, deliver):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20", "initial_stock": 10})
    _, result = deliver("stock.updated", {"product_id": lamp["id"], "available": 3})
    with pytest.raises(ValidationFailed):
        result.get()
    deliver("stock.updated", stock(lamp["id"] + 100, 3, 1))
    deliver("stock.updated", stock(lamp["id"], 2, 1))  # the consumer is still alive
    assert rpc.get_product(lamp["id"])["available"] == 2
