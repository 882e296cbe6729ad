"""A large catalogue, fast: rows go straight into the products and inventory databases with SQLAlchemy Core.

Only for the bench (the services' RPC is the way in everywhere else; `make seed` uses it). Products and their
stock rows get the same ids and stock version 1, so inventory's later ``stock.*`` events (version 2, 3, ...)
apply to the products projection exactly as for products created over RPC.
"""

import random
import time

from sqlalchemy import func, insert, select

from common.db import make_engine
from common.events import utcnow

CATEGORIES = 20
CHUNK = 5000
WORDS = ["Classic", "Organic", "Premium", "Smoky", "Bright", "Velvet", "Roasted", "Wild", "Golden", "Midnight",
         "Nordic", "Alpine", "Harbour", "Sunrise", "Copper", "Maple"]
NOUNS = ["Blend", "Roast", "Brew", "Leaf", "Cup", "Grinder", "Kettle", "Biscuit", "Bar", "Jar", "Press", "Filter"]


class Catalogue:
    def __init__(self, products_uri, inventory_uri, seed=11):
        from services.inventory.models import Stock
        from services.products.models import Category, Product

        self.category, self.product, self.stock = Category.__table__, Product.__table__, Stock.__table__
        self.products_engine = make_engine(products_uri)
        self.inventory_engine = make_engine(inventory_uri)
        self.rng = random.Random(seed)
        self.category_ids = []
        self.rate = None  # products/s of the last bulk load

    def count(self):
        with self.products_engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(self.product))

    def ensure_categories(self):
        if self.category_ids:
            return self.category_ids
        now = utcnow()
        with self.products_engine.begin() as connection:
            connection.execute(insert(self.category), [
                {"name": f"Bench category {n}", "description": "bench", "created_at": now, "updated_at": now}
                for n in range(CATEGORIES)])
            self.category_ids = list(connection.scalars(select(self.category.c.id).order_by(self.category.c.id)))
        return self.category_ids

    def grow_to(self, total, on_hand=None):
        """Add products (with stock) until the catalogue holds ``total``; returns the seconds it took."""
        started = time.monotonic()
        categories = self.ensure_categories()
        have = start = self.count()
        while have < total:
            size = min(CHUNK, total - have)
            self._insert_chunk(have, size, categories, on_hand)
            have += size
        seconds = time.monotonic() - started
        if have - start >= CHUNK:
            self.rate = (have - start) / seconds
        return seconds

    def _insert_chunk(self, start, size, categories, on_hand):
        now, rng = utcnow(), self.rng
        with self.products_engine.begin() as connection:
            first_id = (connection.scalar(select(func.max(self.product.c.id))) or 0) + 1
            stock = [{"product_id": first_id + n, "on_hand": on_hand if on_hand is not None else
                      rng.choice((0, 5, 20, 50, 100, 200)), "reserved": 0, "version": 1, "updated_at": now}
                     for n in range(size)]
            connection.execute(insert(self.product), [{
                "id": first_id + n, "sku": f"BENCH-{start + n:08d}",
                "name": f"{rng.choice(WORDS)} {rng.choice(NOUNS)} {start + n}",
                "description": f"Bench product number {start + n}", "price": f"{rng.uniform(1, 500):.2f}",
                "currency": "USD", "category_id": rng.choice(categories), "available": stock[n]["on_hand"],
                "stock_version": 1, "created_at": now, "updated_at": now} for n in range(size)])
        with self.inventory_engine.begin() as connection:
            connection.execute(insert(self.stock), stock)

    def analyze(self):
        """Fresh index statistics after a bulk load, as a DBA would run (MariaDB only)."""
        if self.products_engine.dialect.name == "mysql":
            with self.products_engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE TABLE products")

    def close(self):
        self.products_engine.dispose()
        self.inventory_engine.dispose()
