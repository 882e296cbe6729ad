"""adjust_stock over real RPC, on SQLite and MariaDB: applied once per key, never below reserved, announced."""

import json

import eventlet
import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import create_engine, select

from common.errors import Conflict, NotFound, ValidationFailed
from services.inventory.models import OutboxMessage, StockAdjustment
from services.inventory.service import InventoryService

RACERS = 50


@pytest.fixture
def inventory(service_config, container_factory):
    with config.patch({"max_workers": 25}):
        container = container_factory(InventoryService)
        container.start()
        with ServiceRpcClient("inventory") as client:
            yield client


def outbox(db_uris):
    engine = create_engine(db_uris["inventory:Base"])
    with engine.connect() as conn:
        events = [json.loads(e) for e in conn.execute(select(OutboxMessage.envelope).order_by(OutboxMessage.id))
                  .scalars()]
        keys = conn.execute(select(StockAdjustment.idempotency_key)).scalars().all()
    engine.dispose()
    return events, keys


def test_an_adjustment_moves_on_hand_once_per_key_and_is_announced(inventory, db_uris):
    inventory.set_stock(3, 10)
    first = inventory.adjust_stock(3, 5, "delivery 42", "delivery-42")
    again = inventory.adjust_stock(3, 5, "delivery 42", "delivery-42")
    assert first == {"product_id": 3, "on_hand": 15, "reserved": 0, "available": 15, "low_stock_threshold": 5,
                     "version": 2}
    assert again == first
    assert inventory.adjust_stock(3, -4, "count", "count-1")["on_hand"] == 11
    events, keys = outbox(db_uris)
    updates = [e["data"] for e in events if e["event_type"] == "stock.updated"]
    assert [(d["on_hand"], d.get("delta"), d.get("reason")) for d in updates] == \
        [(10, None, None), (15, 5, "delivery 42"), (11, -4, "count")]
    assert sorted(keys) == ["count-1", "delivery-42"]


def test_a_key_reused_for_another_adjustment_is_refused(inventory):
    inventory.set_stock(3, 10)
    inventory.adjust_stock(3, 5, "", "k1")
    with pytest.raises(Conflict) as caught:
        inventory.adjust_stock(3, 6, "", "k1")
    assert caught.value.code == "idempotency_key_reused"
    assert inventory.get_stock(3)["on_hand"] == 15


def test_an_adjustment_below_reserved_is_refused_and_changes_nothing(inventory):
    inventory.set_stock(4, 10)
    inventory.reserve_stock("order-1", [{"product_id": 4, "quantity": 6}])
    with pytest.raises(Conflict) as caught:
        inventory.adjust_stock(4, -5, "damaged", "damage-1")
    assert caught.value.code == "stock_below_reserved"
    assert caught.value.details == {"product_id": 4, "on_hand": 10, "reserved": 6, "delta": -5}
    assert inventory.get_stock(4)["on_hand"] == 10
    assert inventory.adjust_stock(4, -4, "damaged", "damage-1")["on_hand"] == 6  # the key was not spent


@pytest.mark.parametrize("product_id, delta, key, field", [
    (0, 1, "k", "product_id"), (1, 0, "k", "delta"), (1, 1, "", "idempotency_key"),
    (1, 2**31, "k", "delta"), (1, 1, "x" * 129, "idempotency_key"), ("x", 1, "k", "product_id"),
])
def test_malformed_adjustments_are_validation_errors(inventory, product_id, delta, key, field):
    with pytest.raises(ValidationFailed) as caught:
        inventory.adjust_stock(product_id, delta, "", key)
    assert field in caught.value.details


def test_adjusting_a_product_without_stock_is_not_found(inventory):
    with pytest.raises(NotFound) as caught:
        inventory.adjust_stock(404, 1, "", "k")
    assert caught.value.code == "stock_not_found"


def removal(number):
    with ServiceRpcClient("inventory") as client:
        try:
            return client.adjust_stock(8, -1, "count", f"count-{number}")
        except Conflict as error:
            return error


def test_fifty_concurrent_removals_never_take_on_hand_below_reserved(inventory, db_uris):
    inventory.set_stock(8, 30)
    inventory.reserve_stock("held", [{"product_id": 8, "quantity": 20}])

    outcomes = list(eventlet.GreenPool(RACERS).imap(removal, range(RACERS)))

    applied = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(applied) == 10 and len(refused) == RACERS - 10
    assert all(e.code == "stock_below_reserved" for e in refused)
    assert inventory.get_stock(8) == {"product_id": 8, "on_hand": 20, "reserved": 20, "available": 0,
                                      "low_stock_threshold": 5}
    assert sorted(o["on_hand"] for o in applied) == list(range(20, 30))
    _, keys = outbox(db_uris)
    assert len(keys) == 10


def test_stock_levels_with_their_versions(inventory):
    inventory.set_stock(1, 3)
    inventory.set_stock(1, 4)
    assert inventory.get_stock_levels([1, 9], with_version=True) == [
        {"product_id": 1, "on_hand": 4, "reserved": 0, "available": 4, "low_stock_threshold": 5, "version": 2}]
