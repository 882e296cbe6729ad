"""Product reads come from the cache (in-process or Redis), and every write is visible to the next read."""

import pytest
import redis
from nameko import config
from sqlalchemy import update

from common.db import make_engine
from common.errors import NotFound
from services.products.models import Product


def change_behind_the_service(product_id, **values):
    """A change the service does not know about: only a read that skips the cache can see it."""
    engine = make_engine(config["DB_URIS"]["products:Base"])
    with engine.begin() as connection:
        connection.execute(update(Product).where(Product.id == product_id).values(**values))
    engine.dispose()


def test_reads_are_cached_and_writes_invalidate(cache_backend, rpc):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20", "initial_stock": 3})
    chair = rpc.create_product({"sku": "CHR-1", "name": "Chair", "price": "45"})
    assert rpc.get_product(lamp["id"]) == lamp
    assert rpc.get_products([chair["id"]]) == [chair]

    change_behind_the_service(lamp["id"], name="Renamed quietly")
    change_behind_the_service(chair["id"], name="Renamed quietly too")
    assert rpc.get_product(lamp["id"])["name"] == "Desk lamp"
    assert rpc.get_products([lamp["id"], chair["id"]]) == [lamp, chair]

    rpc.update_product(lamp["id"], {"price": "18"})
    fresh = rpc.get_product(lamp["id"])
    assert (fresh["name"], fresh["price"]) == ("Renamed quietly", "18.00")
    assert rpc.get_products([lamp["id"], chair["id"]]) == [fresh, chair]

    rpc.delete_product(chair["id"])
    assert rpc.get_products([lamp["id"], chair["id"]]) == [fresh]

    if cache_backend == "redis":
        stored = redis.Redis.from_url(config["REDIS_URI"])
        assert stored.exists(f"products:product:{lamp['id']}") == 1
        assert stored.exists(f"products:product:{chair['id']}") == 0


def test_a_cached_product_is_gone_once_deleted(cache_backend, rpc):
    lamp = rpc.create_product({"sku": "LMP-1", "name": "Desk lamp", "price": "20"})
    assert rpc.get_product(lamp["id"]) == lamp
    rpc.delete_product(f"0{lamp['id']}")  # the id as a client may spell it still evicts the cached copy
    assert rpc.get_products([lamp["id"]]) == []
    assert rpc.search_products({"q": "lamp"})["total"] == 0
    with pytest.raises(NotFound):
        rpc.get_product(lamp["id"])
