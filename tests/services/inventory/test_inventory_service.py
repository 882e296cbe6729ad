"""Inventory over real RPC on SQLite and MariaDB: levels, reservations, and what they publish."""

import pytest
from sqlalchemy import event

from common.db import Database
from common.errors import Conflict, NotFound, ValidationFailed


def test_set_stock_creates_then_updates_and_get_stock_reads_it(inventory):
    created = inventory.set_stock(1, 12)
    updated = inventory.set_stock(1, 8, low_stock_threshold=2)

    assert created == {"product_id": 1, "on_hand": 12, "reserved": 0, "available": 12, "low_stock_threshold": 5}
    assert updated == {"product_id": 1, "on_hand": 8, "reserved": 0, "available": 8, "low_stock_threshold": 2}
    assert inventory.get_stock(1) == updated
    assert inventory.set_stock(1, 9)["low_stock_threshold"] == 2  # an omitted threshold keeps the override
    assert inventory.get_stock_levels([1, 404]) == [inventory.get_stock(1)]


def test_unknown_stock_is_not_found_and_bad_input_is_rejected(inventory):
    with pytest.raises(NotFound) as missing:
        inventory.get_stock(404)
    assert missing.value.code == "stock_not_found"
    with pytest.raises(ValidationFailed) as negative:
        inventory.set_stock(1, -1)
    assert "on_hand" in negative.value.details
    with pytest.raises(ValidationFailed) as no_items:
        inventory.reserve_stock("order-1", [])
    assert "items" in no_items.value.details
    with pytest.raises(ValidationFailed):
        inventory.reserve_stock("order-1", [{"product_id": 1, "quantity": 0}])


def test_on_hand_cannot_go_below_what_is_reserved(inventory):
    inventory.set_stock(1, 5)
    inventory.reserve_stock(10, [{"product_id": 1, "quantity": 3}])

    with pytest.raises(Conflict) as below:
        inventory.set_stock(1, 2)

    assert below.value.code == "stock_below_reserved"
    assert inventory.set_stock(1, 3) == {"product_id": 1, "on_hand": 3, "reserved": 3, "available": 0,
                                         "low_stock_threshold": 5}


def test_a_reservation_holds_every_line_or_none(inventory):
    inventory.set_stock(1, 5)
    inventory.set_stock(2, 1)

    with pytest.raises(Conflict) as short:
        inventory.reserve_stock(20, [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 3},
                                     {"product_id": 3, "quantity": 1}])

    assert short.value.code == "insufficient_stock"
    assert short.value.details["products"] == [
        {"product_id": 2, "requested": 3, "available": 1},
        {"product_id": 3, "requested": 1, "available": 0},
    ]
    assert [s["reserved"] for s in inventory.get_stock_levels([1, 2])] == [0, 0]
    with pytest.raises(NotFound):
        inventory.commit_stock(20)  # nothing was held for the failed order


def test_reserving_is_idempotent_per_order(inventory):
    inventory.set_stock(1, 10)
    lines = [{"product_id": 1, "quantity": 2}, {"product_id": 1, "quantity": 1}]

    first = inventory.reserve_stock(30, lines)
    again = inventory.reserve_stock(30, lines)

    assert first == again == {"order_id": 30, "status": "RESERVED", "items": [{"product_id": 1, "quantity": 3}]}
    assert inventory.get_stock(1)["reserved"] == 3


def test_commit_takes_stock_off_the_shelf_once(inventory):
    inventory.set_stock(1, 10)
    inventory.reserve_stock(40, [{"product_id": 1, "quantity": 4}])

    committed = inventory.commit_stock(40)
    assert inventory.commit_stock(40) == committed

    assert committed["status"] == "COMMITTED"
    assert inventory.get_stock(1) | {"low_stock_threshold": None} == {
        "product_id": 1, "on_hand": 6, "reserved": 0, "available": 6, "low_stock_threshold": None}
    with pytest.raises(NotFound) as unknown:
        inventory.commit_stock(404)
    assert unknown.value.code == "reservation_not_found"


def test_release_frees_a_reservation_once_and_it_can_no_longer_be_committed(inventory):
    inventory.set_stock(1, 10)
    inventory.reserve_stock(50, [{"product_id": 1, "quantity": 4}])

    released = inventory.release_stock(50)
    assert inventory.release_stock(50) == released

    assert released["status"] == "RELEASED"
    assert inventory.get_stock(1)["reserved"] == 0 and inventory.get_stock(1)["on_hand"] == 10
    with pytest.raises(Conflict) as late:
        inventory.commit_stock(50)
    assert late.value.code == "reservation_released"
    assert inventory.release_stock("never-reserved") == {"order_id": "never-reserved", "status": "RELEASED",
                                                         "items": []}


def test_releasing_a_committed_order_puts_its_stock_back_on_hand(inventory):
    inventory.set_stock(1, 10)
    inventory.reserve_stock(60, [{"product_id": 1, "quantity": 4}])
    inventory.commit_stock(60)

    inventory.release_stock(60)
    inventory.release_stock(60)

    assert inventory.get_stock(1)["on_hand"] == 10 and inventory.get_stock(1)["reserved"] == 0


def test_each_reservation_a_commit_or_release_moves_takes_one_update(inventory, inventory_container):
    engine = next(dep for dep in inventory_container.extensions if isinstance(dep, Database)).engine
    updates = []

    def note(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE RESERVATIONS"):
            updates.append(statement)

    inventory.set_stock(1, 10)
    inventory.set_stock(2, 10)
    inventory.reserve_stock(70, [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 2}])
    event.listen(engine, "before_cursor_execute", note)
    try:
        inventory.commit_stock(70)
        assert len(updates) == 2  # one conditional UPDATE per line, no second one flushed from the ORM row
        inventory.release_stock(70)
        assert len(updates) == 4
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert inventory.get_stock(1)["on_hand"] == 10 and inventory.get_stock(2)["reserved"] == 0
