"""The oversell proof: 50 orders race for 10 units through real RPC, on SQLite and on MariaDB."""

import json

import eventlet
import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import create_engine, select

from common.errors import Conflict
from services.inventory.models import OutboxMessage, Reservation
from services.inventory.service import InventoryService

ORDERS = 50
ON_HAND = 10


@pytest.fixture
def inventory(service_config, container_factory):
    with config.patch({"max_workers": 25}):
        container = container_factory(InventoryService)
        container.start()
        yield container


def reserve_one(order_id):
    with ServiceRpcClient("inventory") as client:
        try:
            return client.reserve_stock(f"race-{order_id}", [{"product_id": 7, "quantity": 1}])
        except Conflict as error:
            return error


def test_fifty_concurrent_orders_for_ten_units_reserve_exactly_ten(inventory, db_uris):
    with ServiceRpcClient("inventory") as client:
        client.set_stock(7, ON_HAND, low_stock_threshold=3)

        outcomes = list(eventlet.GreenPool(ORDERS).imap(reserve_one, range(ORDERS)))

        stock = client.get_stock(7)
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(won) == ON_HAND and len(lost) == ORDERS - ON_HAND
    assert all(o["status"] == "RESERVED" for o in won)
    assert all(e.code == "insufficient_stock" and e.details["products"][0]["available"] == 0 for e in lost)
    assert stock == {"product_id": 7, "on_hand": ON_HAND, "reserved": ON_HAND, "available": 0,
                     "low_stock_threshold": 3}

    engine = create_engine(db_uris["inventory:Base"])
    with engine.connect() as conn:
        held = conn.execute(select(Reservation.order_id)).scalars().all()
        events = [json.loads(e) for e in conn.execute(select(OutboxMessage.envelope)).scalars()]
    engine.dispose()
    assert sorted(held) == sorted(o["order_id"] for o in won)
    reserved = [e["data"] for e in events if e["event_type"] == "stock.reserved"]
    # Each winner saw its own state: availability walked down 9..0 with a fresh version each step.
    assert sorted(d["available"] for d in reserved) == list(range(ON_HAND))
    assert len({d["version"] for d in reserved}) == ON_HAND
    assert [e["data"]["available"] for e in events if e["event_type"] == "stock.low"] == [2]
