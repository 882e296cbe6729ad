"""Categories and products over RPC: create, read, change, delete, the errors of API.md, and the events they emit."""

from decimal import Decimal

import pytest

from common.errors import Conflict, NotFound, ValidationFailed
from schemas.events import validate as validate_event
from tests.support import wait_until

PRODUCT_FIELDS = {"id", "sku", "name", "description", "price", "currency", "category_id", "available",
                  "created_at", "updated_at"}


def ids(values):
    """Nameko carries the details of an RPC error as strings."""
    return [int(value) for value in values]


def events_of(events, event_type, count):
    return wait_until(lambda: [e for e in events if e["event_type"] == event_type][:count]
                      if len([e for e in events if e["event_type"] == event_type]) >= count else None,
                      message=f"{count} {event_type} events")


def test_category_lifecycle_with_its_events(events, rpc):
    tools = rpc.create_category({"name": "Tools", "description": "Hand tools"})
    saws = rpc.create_category({"name": "Saws", "parent_id": tools["id"]})
    assert tools["name"] == "Tools" and tools["parent_id"] is None and tools["created_at"].endswith("Z")
    assert saws["parent_id"] == tools["id"] and saws["description"] is None

    assert [c["name"] for c in rpc.list_categories()] == ["Saws", "Tools"]
    assert rpc.get_category(tools["id"]) == tools
    renamed = rpc.update_category(saws["id"], {"name": "Hand saws", "description": "Cuts wood"})
    assert renamed["name"] == "Hand saws" and renamed["parent_id"] == tools["id"]
    assert rpc.get_category(saws["id"]) == renamed

    rpc.delete_category(saws["id"])
    with pytest.raises(NotFound):
        rpc.get_category(saws["id"])
    assert [c["id"] for c in rpc.list_categories()] == [tools["id"]]

    created = events_of(events, "category.created", 2)
    assert {e["aggregate_id"] for e in created} == {str(tools["id"]), str(saws["id"])}
    assert all(e["source"] == "products" and e["correlation_id"] for e in created)
    [updated] = events_of(events, "category.updated", 1)
    assert updated["data"] == renamed and updated["aggregate_id"] == str(saws["id"])
    [deleted] = events_of(events, "category.deleted", 1)
    assert deleted["data"]["id"] == saws["id"]
    for envelope in events:
        validate_event(envelope)  # the JSON Schemas Kafka consumers rely on


def test_category_rules(rpc):
    tools = rpc.create_category({"name": "Tools"})
    saws = rpc.create_category({"name": "Saws", "parent_id": tools["id"]})
    rip_saws = rpc.create_category({"name": "Rip saws", "parent_id": saws["id"]})

    with pytest.raises(Conflict) as error:
        rpc.create_category({"name": "tools"})
    assert error.value.code == "duplicate_category" and "name" in error.value.details
    with pytest.raises(Conflict):
        rpc.update_category(saws["id"], {"name": "TOOLS"})
    assert rpc.update_category(tools["id"], {"name": "Tools"})["name"] == "Tools"  # its own name is no clash

    with pytest.raises(ValidationFailed) as error:
        rpc.create_category({"name": "Orphans", "parent_id": 999})
    assert error.value.status == 422 and "parent_id" in error.value.details
    for ancestor_loop in (tools["id"], saws["id"], rip_saws["id"]):
        with pytest.raises(ValidationFailed) as error:
            rpc.update_category(tools["id"], {"parent_id": ancestor_loop})
        assert "parent_id" in error.value.details
    with pytest.raises(ValidationFailed) as error:
        rpc.create_category({"name": "", "description": 5})
    assert set(error.value.details) == {"name", "description"}
    with pytest.raises(NotFound) as error:
        rpc.update_category(999, {"name": "x"})
    assert error.value.code == "category_not_found"

    with pytest.raises(Conflict) as error:
        rpc.delete_category(tools["id"])
    assert error.value.code == "category_in_use" and ids(error.value.details["children"]) == [saws["id"]]
    saw = rpc.create_product({"sku": "SAW-1", "name": "Rip saw", "price": "30", "category_id": rip_saws["id"]})
    with pytest.raises(Conflict) as error:
        rpc.delete_category(rip_saws["id"])
    assert error.value.code == "category_in_use" and int(error.value.details["products"]) == 1

    rpc.delete_product(saw["id"])
    rpc.delete_category(rip_saws["id"])  # a deleted product no longer holds its category
    assert rpc.update_category(saws["id"], {"parent_id": None})["parent_id"] is None
    rpc.delete_category(tools["id"])
    assert [c["name"] for c in rpc.list_categories()] == ["Saws"]


def test_product_lifecycle_with_its_events(events, rpc):
    lamps = rpc.create_category({"name": "Lamps"})
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "19.999",
                               "category_id": lamps["id"], "initial_stock": 7})
    assert set(lamp) == PRODUCT_FIELDS
    assert (lamp["price"], lamp["currency"], lamp["available"], lamp["description"]) == ("20.00", "USD", 7, None)
    assert rpc.get_product(lamp["id"]) == lamp

    changed = rpc.update_product(lamp["id"], {"price": 17.5, "description": "Warm light", "currency": "eur"})
    assert changed == {**lamp, "price": "17.50", "description": "Warm light", "currency": "EUR",
                       "updated_at": changed["updated_at"]}
    assert rpc.get_product(lamp["id"]) == changed
    assert rpc.update_product(lamp["id"], {"category_id": None})["category_id"] is None

    rpc.delete_product(lamp["id"])
    for read in (rpc.get_product, rpc.delete_product, lambda pid: rpc.update_product(pid, {"name": "x"})):
        with pytest.raises(NotFound) as error:
            read(lamp["id"])
        assert error.value.code == "product_not_found"
    assert rpc.get_products([lamp["id"]]) == []
    assert rpc.search_products({})["total"] == 0

    [created] = events_of(events, "product.created", 1)
    assert created["data"] == {**lamp, "initial_stock": 7} and created["aggregate_id"] == str(lamp["id"])
    updated = events_of(events, "product.updated", 2)
    assert sorted(e["data"]["price"] for e in updated) == ["17.50", "17.50"]
    [deleted] = events_of(events, "product.deleted", 1)
    assert deleted["data"]["id"] == lamp["id"] and deleted["data"]["deleted_at"].endswith("Z")
    for envelope in events:
        validate_event(envelope)


def test_an_update_that_changes_nothing_emits_nothing(events, rpc):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20"})
    assert rpc.update_product(lamp["id"], {"name": "Desk lamp", "price": 20}) == lamp
    rpc.update_product(lamp["id"], {"name": "Floor lamp"})
    [updated] = events_of(events, "product.updated", 1)
    assert updated["data"]["name"] == "Floor lamp"
    assert len([e for e in events if e["event_type"] == "product.updated"]) == 1


def test_skus_are_unique_case_insensitively_and_stay_reserved_after_delete(rpc):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20"})
    chair = rpc.create_product({"sku": "CHR-1", "name": "Chair", "price": Decimal("45.5")})
    assert chair["price"] == "45.50"
    for sku in ("LMP-1", "lmp-1"):
        with pytest.raises(Conflict) as error:
            rpc.create_product({"sku": sku, "name": "Copy", "price": "1"})
        assert error.value.status == 409 and error.value.code == "duplicate_sku" and "sku" in error.value.details
    with pytest.raises(Conflict) as error:
        rpc.update_product(chair["id"], {"sku": "lmp-1"})
    assert error.value.code == "duplicate_sku"
    assert rpc.update_product(lamp["id"], {"sku": "LMP-1", "name": "Lamp"})["name"] == "Lamp"

    rpc.delete_product(lamp["id"])
    with pytest.raises(Conflict) as error:
        rpc.create_product({"sku": "LMP-1", "name": "New lamp", "price": "1"})
    assert error.value.code == "duplicate_sku"


def test_product_input_errors_name_their_fields(rpc):
    with pytest.raises(ValidationFailed) as error:
        rpc.create_product({"sku": "LMP-1", "name": "Lamp", "price": "1", "category_id": 42})
    assert error.value.status == 422 and list(error.value.details) == ["category_id"]
    with pytest.raises(ValidationFailed) as error:
        rpc.create_product({"sku": "no spaces", "price": "free", "initial_stock": -1})
    assert set(error.value.details) == {"sku", "name", "price", "initial_stock"}
    assert all(isinstance(messages, list) for messages in error.value.details.values())
    with pytest.raises(ValidationFailed):
        rpc.create_product(["not", "a", "dict"])
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Lamp", "price": "1"})
    with pytest.raises(ValidationFailed) as error:
        rpc.update_product(lamp["id"], {"price": None, "initial_stock": 3, "category_id": 42})
    assert set(error.value.details) == {"price", "initial_stock"}
    with pytest.raises(ValidationFailed) as error:
        rpc.update_product(lamp["id"], {"category_id": 42})
    assert list(error.value.details) == ["category_id"]
    for bad_id in ("abc", None, 0, True):
        with pytest.raises(ValidationFailed) as error:
            rpc.get_product(bad_id)
        assert list(error.value.details) == ["product_id"]
    with pytest.raises(NotFound):
        rpc.get_product(lamp["id"] + 1)
    assert rpc.get_product(str(lamp["id"])) == lamp


def test_get_products_answers_live_products_in_the_order_asked(rpc):
    a, b, c = (rpc.create_product({"sku": f"P-{i}", "name": f"P {i}", "price": i}) for i in (1, 2, 3))
    rpc.delete_product(b["id"])
    assert rpc.get_products([c["id"], a["id"], b["id"], 999, c["id"]]) == [c, a]
    assert rpc.get_products([]) == []
    with pytest.raises(ValidationFailed):
        rpc.get_products([a["id"], "x"])
    with pytest.raises(ValidationFailed):
        rpc.get_products(a["id"])
