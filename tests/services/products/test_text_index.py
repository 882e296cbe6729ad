"""The text index (services/products/text_index.py): the same answers as SQL, every replica current within about a
second of any change, rebuildable; and the search window (services/products/window.py) on both search paths."""

import time
from decimal import Decimal

import pytest
from nameko import config
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from common.db import make_engine
from common.errors import ValidationFailed
from common.events import make_envelope
from services.products import models
from services.products.models import Product
from services.products.service import ProductsService
from services.products.text_index import TextIndex
from tests.support import wait_until

SORTS = ["name", "-name", "price", "-price", "created_at", "-created_at"]
WORDS = ["lamp", "LIGHT", "oak", "ste", "desk lamp", "zz", "1", "blue steel"]


def text_index(container, products=None):
    """The replica's index, once built (and holding ``products`` documents: a write on the other replica reaches
    this one by event, up to a second later)."""
    index = next(dep for dep in container.dependencies if isinstance(dep, TextIndex))
    wait_until(lambda: index.ready and products in (None, index.index.index.searcher().num_docs),
               message="the text index to be built")
    return index


def query(**params):
    return {"page": 1, "page_size": 20, "sort": "name", **params}


def found(index, **params):
    total, ids = index.search(query(**params), 10_000)
    return total, ids


@pytest.fixture
def replicas(service_config, container_factory):
    """Two products replicas, each with its own index."""
    containers = [container_factory(ProductsService) for _ in range(2)]
    for container in containers:
        container.start()
    return containers


@pytest.fixture
def rpc(replicas):
    with ServiceRpcClient("products") as client:
        yield client


@pytest.fixture
def catalogue(rpc):
    category = rpc.create_category({"name": "lights"})["id"]
    rows = [("desk Lamp", "LMP-1", "Warm light for the desk", "19.99", 5, category),
            ("Floor lamp", "LMP-2", None, "49.00", 0, category),
            ("Steel lamp", "LMP-3", "Blue steel", "19.99", 2, None),
            ("oak table", "TBL-1", "Solid oak, no lamp", "120.00", 1, None),
            ("Stool", "STL-1", "Oak and steel", "35.50", 0, None)]
    return [rpc.create_product({"name": name, "sku": sku, "description": description, "price": price,
                                "initial_stock": stock, "category_id": cat})
            for name, sku, description, price, stock, cat in rows]


def sql_answer(q, **params):
    engine = make_engine(config["DB_URIS"]["products:Base"])
    try:
        with Session(engine) as session:
            total, rows = models.search_products(session, {**query(q=q), **params})
            return total, [row.id for row in rows]
    finally:
        engine.dispose()


def test_the_index_answers_as_sql_does_for_every_word_filter_sort_and_page(db_backend, replicas, rpc, catalogue):
    index = text_index(replicas[0], len(catalogue))
    category = catalogue[0]["category_id"]
    cases = [{}, {"in_stock": True}, {"category_id": category}, {"min_price": "19.99", "max_price": "40"},
             {"page_size": 2, "page": 2}]
    for q in WORDS:
        for sort in SORTS:
            for case in cases:
                params = {"sort": sort, **case}
                for key in ("min_price", "max_price"):
                    if key in params:
                        params[key] = Decimal(params[key])
                assert found(index, q=q, **params) == sql_answer(q, **params), (q, params)
    assert found(index, q="lamp")[0] == 4 and found(index, q="!!")[0] == 0
    page = rpc.search_products({"q": "steel", "sort": "-price"})
    assert [item["sku"] for item in page["items"]] == ["STL-1", "LMP-3"] and page["total_exact"] is True


def test_every_replica_sees_a_create_update_and_delete_within_a_second(db_backend, replicas, rpc, catalogue):
    indexes = [text_index(container) for container in replicas]

    def everywhere(expected, **params):
        started = time.monotonic()
        wait_until(lambda: all(sorted(found(index, **params)[1]) == expected for index in indexes), timeout=5,
                   message=f"{params} -> {expected} on both replicas")
        return time.monotonic() - started

    lag = [everywhere([catalogue[0]["id"], catalogue[1]["id"], catalogue[2]["id"], catalogue[3]["id"]], q="lamp")]
    lantern = rpc.create_product({"sku": "LNT-1", "name": "Lantern", "price": "9.00"})
    lag.append(everywhere([lantern["id"]], q="lanter"))
    rpc.update_product(lantern["id"], {"name": "Storm lantern", "description": "Hurricane proof"})
    lag.append(everywhere([lantern["id"]], q="hurricane storm"))
    rpc.delete_product(lantern["id"])
    lag.append(everywhere([], q="lantern"))
    assert max(lag) < 1.5, lag  # API.md: a search may trail a write by up to a second
    assert rpc.search_products({"q": "lantern"})["total"] == 0


def test_stock_events_reach_every_replicas_in_stock_filter(db_backend, replicas, rpc, catalogue):
    indexes = [text_index(container, len(catalogue)) for container in replicas]
    floor = catalogue[1]
    assert floor["id"] not in found(indexes[0], q="floor", in_stock=True)[1]
    data = {"product_id": floor["id"], "on_hand": 3, "reserved": 0, "available": 3, "low_stock_threshold": 5,
            "version": 7}
    event_dispatcher()("inventory", "stock.updated", make_envelope("stock.updated", floor["id"], data,
                                                                    source="inventory"))
    wait_until(lambda: all(found(index, q="floor", in_stock=True)[1] == [floor["id"]] for index in indexes),
               timeout=3, message="the stock level on both replicas")


def test_rebuild_reads_the_table_again(db_backend, replicas, rpc, catalogue):
    index = text_index(replicas[0], len(catalogue))
    engine = make_engine(config["DB_URIS"]["products:Base"])
    with engine.begin() as connection:  # behind the service's back: no event tells the index
        connection.execute(update(Product).where(Product.id == catalogue[4]["id"]).values(name="Milking stool"))
    engine.dispose()
    assert found(index, q="milking")[0] == 0
    assert rpc.rebuild_search_index() == 5  # on one replica, whichever took the call
    assert any(found(text_index(c), q="milking")[1] == [catalogue[4]["id"]] for c in replicas)
    for container in replicas:
        assert text_index(container).rebuild() == 5
        assert found(text_index(container), q="milking")[1] == [catalogue[4]["id"]]
        assert found(text_index(container), q="stool")[0] == 1


@pytest.mark.parametrize("q", [None, "l"])
def test_totals_are_capped_at_the_window_and_pages_past_it_refused(db_backend, replicas, rpc, catalogue, q):
    for container in replicas:
        text_index(container, len(catalogue))
    params = {"q": q} if q else {}
    with config.patch({"SEARCH_WINDOW": 3}):  # the service reads it per search
        capped = rpc.search_products({**params, "page_size": 3})
        assert (capped["total"], capped["total_exact"], len(capped["items"])) == (3, False, 3)
        assert rpc.search_products({**params, "page_size": 1, "page": 3})["total_exact"] is False
        with pytest.raises(ValidationFailed) as error:
            rpc.search_products({**params, "page_size": 2, "page": 2})  # 2 * 2 > 3
        assert error.value.code == "result_window_too_large"
        exact = rpc.search_products({**params, "category_id": catalogue[0]["category_id"], "page_size": 3})
        assert (exact["total"], exact["total_exact"]) == (2, True)
    whole = rpc.search_products(params)
    assert whole["total_exact"] is True and whole["total"] == (5 if q is None else 4)
    with pytest.raises(ValidationFailed):
        rpc.search_products({**params, "page": 101, "page_size": 100})
