"""What inventory publishes (through its outbox), and how it reacts to products' events."""

import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from common.errors import NotFound
from common.events import make_envelope
from tests.support import wait_until

received = []


class StockWatcher:
    name = "stock_watcher"

    @event_handler("inventory", "stock.updated")
    @event_handler("inventory", "stock.reserved")
    @event_handler("inventory", "stock.released")
    @event_handler("inventory", "stock.committed")
    @event_handler("inventory", "stock.low")
    def record(self, envelope):
        received.append(envelope)


@pytest.fixture
def watcher(service_config, container_factory):
    received.clear()
    container_factory(StockWatcher).start()
    return received


def of_type(event_type):
    return [e["data"] for e in received if e["event_type"] == event_type]


def test_every_change_is_published_and_stock_low_once_per_crossing(watcher, inventory):
    inventory.set_stock(1, 10, low_stock_threshold=5)
    inventory.reserve_stock("a", [{"product_id": 1, "quantity": 5}])   # 5 left: not below 5
    inventory.reserve_stock("b", [{"product_id": 1, "quantity": 1}])   # 4: crosses
    inventory.reserve_stock("c", [{"product_id": 1, "quantity": 1}])   # 3: still below, no new alert
    inventory.release_stock("b")
    inventory.release_stock("c")                                         # back to 5
    inventory.commit_stock("a")                                          # on hand 5, available 5
    inventory.reserve_stock("d", [{"product_id": 1, "quantity": 2}])   # 3: crosses again

    wait_until(lambda: len(received) >= 10, message="10 stock events")
    assert sorted(e["event_type"] for e in received) == sorted(
        ["stock.updated"] + ["stock.reserved"] * 4 + ["stock.released"] * 2 + ["stock.committed"]
        + ["stock.low"] * 2)
    assert all(e["aggregate_id"] == "1" and e["source"] == "inventory" for e in received)
    assert sorted(d["available"] for d in of_type("stock.low")) == [3, 4]
    assert sorted(d["version"] for d in of_type("stock.reserved") + of_type("stock.released")
                  + of_type("stock.committed") + of_type("stock.updated")) == list(range(1, 9))
    crossing = next(d for d in of_type("stock.reserved") if d["order_id"] == "b")
    assert crossing == {"product_id": 1, "on_hand": 10, "reserved": 6, "available": 4,
                        "low_stock_threshold": 5, "version": 3, "order_id": "b", "quantity": 1}
    assert of_type("stock.committed") == [{"product_id": 1, "on_hand": 5, "reserved": 0, "available": 5,
                                           "low_stock_threshold": 5, "version": 7, "order_id": "a",
                                           "quantity": 5}]


def test_lowering_on_hand_or_raising_the_threshold_can_cross_too(watcher, inventory):
    inventory.set_stock(1, 10)                          # default threshold 5
    inventory.set_stock(1, 4)                           # crosses
    inventory.set_stock(1, 3)                           # still below
    inventory.set_stock(1, 8)
    inventory.set_stock(1, 8, low_stock_threshold=9)    # crosses by a new threshold

    wait_until(lambda: len(of_type("stock.updated")) >= 5, message="5 stock.updated")
    wait_until(lambda: len(of_type("stock.low")) >= 2, message="2 stock.low")
    assert [(d["available"], d["low_stock_threshold"]) for d in sorted(of_type("stock.low"),
                                                                        key=lambda d: d["version"])] == [(4, 5), (8, 9)]


def product_created(product_id, **extra):
    return make_envelope("product.created", product_id, {"id": product_id, "sku": f"SKU-{product_id}", **extra},
                         source="products")


def deliver(container, envelope):
    with entrypoint_waiter(container, "create_stock_for_new_product"):
        event_dispatcher()("products", "product.created", envelope)


def test_a_new_product_gets_its_initial_stock_once(inventory_container, inventory):
    envelope = product_created(1, initial_stock=7)
    deliver(inventory_container, envelope)
    assert inventory.get_stock(1)["on_hand"] == 7

    inventory.set_stock(1, 3)
    deliver(inventory_container, envelope)  # a redelivery
    assert inventory.get_stock(1)["on_hand"] == 3

    deliver(inventory_container, product_created(2))
    assert inventory.get_stock(2)["on_hand"] == 0


def test_stock_set_before_the_product_event_arrives_is_kept(inventory_container, inventory):
    inventory.set_stock(3, 4)

    deliver(inventory_container, product_created(3, initial_stock=9))

    assert inventory.get_stock(3)["on_hand"] == 4
    with pytest.raises(NotFound):
        inventory.get_stock(4)
