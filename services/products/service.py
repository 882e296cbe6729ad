"""The catalogue: categories and products over RPC, product reads through the cache, changes as events.

``available`` is not ours: it projects inventory's ``stock.*`` events, applied only from a newer stock version.
A deleted product is soft-deleted: gone from every read, its row (and its sku, reserved for good) kept for history.
"""

from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from common.cache import MISSING, Cache
from common.correlation import CorrelationId
from common.db import Database
from common.errors import Conflict, NotFound, ValidationFailed
from common.events import broadcast_handler, domain_event_handler, utcnow
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import rpc
from common.validation import load, load_id, load_ids
from schemas.common import rfc3339
from schemas.products import (
    CategoryCreateSchema,
    CategorySchema,
    CategoryUpdateSchema,
    ProductCreateSchema,
    ProductSearchSchema,
    ProductUpdateSchema,
    StockLevelSchema,
    product_document,
)
from services.products import models, window
from services.products.models import Base, Category, OutboxMessage, ProcessedEvent, Product
from services.products.text_index import TextIndex

MAX_BATCH = 1000
dump_category = CategorySchema().dump


class ProductsService(Operational):
    name = "products"

    db = Database(Base, handled_events=ProcessedEvent)
    outbox = Outbox(OutboxMessage)
    cache = Cache()
    correlation = CorrelationId()
    metrics = Metrics()
    text_index = TextIndex()

    @rpc(read_only=True)
    def list_categories(self):
        with self.db.get_session() as session:
            return dump_category(session.scalars(select(Category).order_by(Category.name, Category.id)), many=True)

    @rpc(read_only=True)
    def get_category(self, category_id):
        with self.db.get_session() as session:
            return dump_category(self._category(session, category_id))

    @rpc
    def create_category(self, data):
        fields = load(CategoryCreateSchema(), data)
        with self._transaction(category_name_taken(fields["name"])) as session:
            self._check_new_category_fields(session, None, fields)
            category = Category(**fields)
            session.add(category)
            return self._emit(session, "category.created", category, dump_category)

    @rpc
    def update_category(self, category_id, data):
        fields = load(CategoryUpdateSchema(), data)
        with self._transaction(category_name_taken(fields.get("name"))) as session:
            category = self._category(session, category_id)
            self._check_new_category_fields(session, category, fields)
            changed = assign(category, fields)
            return self._emit(session, "category.updated", category, dump_category, changed)

    @rpc
    def delete_category(self, category_id):
        with self._transaction(category_in_use({})) as session:
            category = self._category(session, category_id)
            self._check_category_unused(session, category)
            models.detach_deleted_products(session, category.id)
            session.delete(category)
            self.outbox.add(session, "category.deleted", category.id, dump_category(category))

    @rpc(read_only=True)
    def search_products(self, params=None):
        filters = load(ProductSearchSchema(), params)
        limit = window.size()
        window.check(filters, limit)
        found = self.text_index.search(filters, limit) if filters.get("q") else None
        with self.db.get_session() as session:
            if found is None:
                total, products = models.search_products(session, filters, limit)
            else:
                total, products = found[0], models.products_by_id(session, found[1])
            return window.page([product_document(row) for row in products], filters, total, limit)

    @rpc
    def rebuild_search_index(self):
        """Re-read the catalogue into this replica's text index; how many products it holds."""
        return self.text_index.rebuild()

    # Every replica sees every change (a broadcast queue each, not the service's shared one): each has an index.
    @broadcast_handler("products", "product.created")
    @broadcast_handler("products", "product.updated")
    @broadcast_handler("products", "product.deleted")
    def index_product_change(self, envelope):
        self.text_index.changed((envelope.get("data") or {}).get("id"))

    @broadcast_handler("inventory", "stock.updated")
    @broadcast_handler("inventory", "stock.reserved")
    @broadcast_handler("inventory", "stock.released")
    @broadcast_handler("inventory", "stock.committed")
    def index_stock_change(self, envelope):
        level = load(StockLevelSchema(), envelope.get("data"))
        self.text_index.changed(level["product_id"], (level["available"], level["version"]))

    @rpc
    def get_product(self, product_id):
        product_id = load_id(product_id, "product_id")
        product = self.cache.get_or_load(product_key(product_id), lambda: self._load_product(product_id))
        if product is None:
            raise NotFound(f"Product {product_id} not found.", code="product_not_found")
        return product

    @rpc
    def get_products(self, product_ids):
        ids = load_ids(product_ids, "product_ids", MAX_BATCH)
        found = {pid: self.cache.get(product_key(pid)) for pid in ids}
        missing = [pid for pid, product in found.items() if product is MISSING]
        for pid, product in self._load_products(missing).items():
            self.cache.set(product_key(pid), product)
            found[pid] = product
        return [found[pid] for pid in ids if found[pid] is not MISSING]

    @rpc
    def create_product(self, data):
        fields = load(ProductCreateSchema(), data)
        initial_stock = fields.pop("initial_stock")
        with self._transaction(duplicate_sku(fields["sku"])) as session:
            self._check_new_product_fields(session, None, fields)
            product = Product(**fields, available=initial_stock, stock_version=0)
            session.add(product)
            document = self._emit(session, "product.created", product, product_document, initial_stock=initial_stock)
        self.text_index.written(document["id"])
        return document

    @rpc
    def update_product(self, product_id, data):
        fields = load(ProductUpdateSchema(), data)
        with self._transaction(duplicate_sku(fields.get("sku"))) as session:
            product = self._live_product(session, product_id)
            self._check_new_product_fields(session, product, fields)
            changed = assign(product, fields)
            document = self._emit(session, "product.updated", product, product_document, changed)
        self.cache.delete(product_key(document["id"]))
        self.text_index.written(document["id"])
        return document

    @rpc
    def delete_product(self, product_id):
        product_id = load_id(product_id, "product_id")
        with self.db.get_session() as session:
            product = self._live_product(session, product_id)
            product.deleted_at = utcnow()
            self._emit(session, "product.deleted", product, product_document, deleted_at=rfc3339(product.deleted_at))
        self.cache.delete(product_key(product_id))
        self.text_index.written(product_id)

    # a repeat changes nothing (only a newer stock version is applied): no processed-event record needed
    @domain_event_handler("inventory", "stock.updated", idempotent=True)
    @domain_event_handler("inventory", "stock.reserved", idempotent=True)
    @domain_event_handler("inventory", "stock.released", idempotent=True)
    @domain_event_handler("inventory", "stock.committed", idempotent=True)
    def apply_stock_level(self, envelope):
        level = load(StockLevelSchema(), envelope.get("data"))
        with self.db.get_session() as session:
            changed = models.apply_stock_level(session, level["product_id"], level["available"], level["version"])
        if changed:
            self.cache.delete(product_key(level["product_id"]))

    # -- helpers ---------------------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, conflict):
        """A write; a unique key another worker took between our check and our commit becomes ``conflict``."""
        try:
            with self.db.get_session() as session:
                yield session
        except IntegrityError as error:
            raise conflict from error

    def _emit(self, session, event_type, entity, to_document, changed=True, **extra):
        """Stage the event of a change (``extra`` goes into its data only); returns the entity's document."""
        session.flush()
        document = to_document(entity)
        if changed:
            self.outbox.add(session, event_type, entity.id, {**document, **extra})
        return document

    def _category(self, session, category_id):
        category = session.get(Category, load_id(category_id, "category_id"))
        if category is None:
            raise NotFound(f"Category {category_id} not found.", code="category_not_found")
        return category

    def _live_product(self, session, product_id):
        product = session.get(Product, load_id(product_id, "product_id"))
        if product is None or product.deleted_at is not None:
            raise NotFound(f"Product {product_id} not found.", code="product_not_found")
        return product

    def _load_product(self, product_id):
        return self._load_products([product_id]).get(product_id)

    def _load_products(self, product_ids):
        if not product_ids:
            return {}
        with self.db.get_session() as session:
            products = session.scalars(models.live_products().where(Product.id.in_(product_ids))).all()
            return {product.id: product_document(product) for product in products}

    def _check_new_category_fields(self, session, category, fields):
        if "name" in fields and models.is_taken(session, Category.name, fields["name"], category):
            raise category_name_taken(fields["name"])
        parent_id = fields.get("parent_id")
        if parent_id is None:
            return
        ancestor, seen = session.get(Category, parent_id), set()
        if ancestor is None:
            raise invalid("parent_id", f"Unknown category {parent_id}.")
        while ancestor is not None and ancestor.id not in seen:
            if category is not None and ancestor.id == category.id:
                raise invalid("parent_id", "A category cannot be its own ancestor.")
            seen.add(ancestor.id)
            ancestor = session.get(Category, ancestor.parent_id) if ancestor.parent_id else None

    def _check_category_unused(self, session, category):
        products = models.live_products_in_category(session, category.id)
        if products:
            raise category_in_use({"products": products})
        children = session.scalars(select(Category.id).where(Category.parent_id == category.id)).all()
        if children:
            raise category_in_use({"children": list(children)})

    def _check_new_product_fields(self, session, product, fields):
        if "sku" in fields and models.is_taken(session, Product.sku, fields["sku"], product):
            raise duplicate_sku(fields["sku"])
        category_id = fields.get("category_id")
        if category_id is not None and session.get(Category, category_id) is None:
            raise invalid("category_id", f"Unknown category {category_id}.")


def product_key(product_id):
    return f"product:{product_id}"


def assign(entity, fields):
    """Apply a PATCH; returns whether anything changed."""
    changed = False
    for name, value in fields.items():
        if getattr(entity, name) != value:
            setattr(entity, name, value)
            changed = True
    return changed


def invalid(field, message):
    return ValidationFailed("Invalid input.", details={field: [message]})


def duplicate_sku(sku):
    return Conflict(f"A product with sku {sku!r} exists (skus of deleted products stay reserved).",
                    details={"sku": [f"Already used: {sku}."]}, code="duplicate_sku")


def category_name_taken(name):
    return Conflict(f"A category named {name!r} exists.", details={"name": [f"Already used: {name}."]},
                    code="duplicate_category")


def category_in_use(details):
    return Conflict("The category still has products or subcategories.", details=details, code="category_in_use")
