"""A tantivy full-text index of the live products, one per products replica, for searches with ``q``.

SQL text search visits every match of a word to count and sort them (InnoDB FULLTEXT on a common word at 1,000,000
products did not finish within a bench run); tantivy counts and ranks in Rust over its own posting lists and fast
fields, and hands back one page of ids, which are then read by primary key.

Lifecycle: built from the products table at start, in the background (``search`` answers ``None`` until it is
ready, and the caller uses SQL). Kept current by ``changed``: the service calls it for every ``product.*`` and
``stock.*`` event, which each replica receives on a broadcast queue of its own; a changed product is re-read from
the primary by id a moment later (``SEARCH_REFRESH_SECONDS``) and replaced in the index, so event order does not
matter and a search trails a write by well under the second API.md allows. ``rebuild`` re-reads the whole table.

The index lives in a directory of its own per process, under ``SEARCH_INDEX`` (a temporary one when unset), and is
built afresh at every start: a rebuild takes seconds at 100,000 products, and nothing stale survives a restart.
"""

import calendar
import logging
import shutil
import tempfile
import time
from types import SimpleNamespace

import eventlet
import eventlet.event
import eventlet.semaphore
import tantivy
from eventlet import tpool
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy import select

from common.dependencies import declared
from services.products.models import PRODUCT_COLUMNS, WORD, Product

log = logging.getLogger(__name__)

# The writer's indexing arena: tantivy's minimum is 15 MB per thread; one thread keeps the pod under its limit.
WRITER_HEAP_BYTES = 20_000_000
BATCH = 2000
DEFAULT_REFRESH_SECONDS = 0.5  # 0.2 s committed up to 5 times a second under orders; API.md allows 1 s
ANALYZER = "words"
# Sort keys are text fast fields that order as the SQL path does: the value (case-folded name, zero-padded cents or
# microseconds), then the zero-padded id, so equal values keep SQL's tie-break on id.
SORT_KEYS = {"name": "by_name", "price": "by_price", "created_at": "by_created"}
ID_DIGITS = 20


def build_schema():
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", stored=True, indexed=True, fast=True)
    # name, description and sku in one field: a word may match any of them, and every word must match somewhere.
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="basic")
    builder.add_integer_field("category_id", indexed=True, fast=True)
    builder.add_integer_field("price_cents", indexed=True, fast=True)
    builder.add_integer_field("available", fast=True)
    # ``in_stock`` as a term (1 or 0): a posting list to intersect, where a range on ``available`` scans every match.
    builder.add_integer_field("in_stock", indexed=True)
    for key in SORT_KEYS.values():
        builder.add_text_field(key, fast=True, tokenizer_name="raw", index_option="basic")
    return builder.build()


def words_analyzer():
    """Words as the SQL path splits them (runs of letters and digits), lower-cased, and none dropped for length
    (tantivy's default analyzer drops words over 40 bytes, which SQL still finds)."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.lowercase()).build())


def cents(price):
    return int(round(price * 100))


def padded(number):
    return f"{number:0{ID_DIGITS}d}"


def document(row):
    """The index's document for a products row (a live one: deleted products are not in the index)."""
    created = row.created_at
    micros = calendar.timegm(created.timetuple()) * 1_000_000 + created.microsecond if created else 0
    doc = tantivy.Document()
    doc.add_integer("id", row.id)
    doc.add_text("text", " ".join(part for part in (row.name, row.description, row.sku) if part))
    if row.category_id is not None:
        doc.add_integer("category_id", row.category_id)
    doc.add_integer("price_cents", cents(row.price))
    doc.add_integer("available", row.available)
    doc.add_integer("in_stock", 1 if row.available > 0 else 0)
    doc.add_text("by_name", f"{row.name.lower()}\x00{padded(row.id)}")
    doc.add_text("by_price", f"{padded(cents(row.price))}\x00{padded(row.id)}")
    doc.add_text("by_created", f"{padded(micros)}\x00{padded(row.id)}")
    return doc


class Index:
    """One tantivy index and its single writer; every method runs in the service's event loop."""

    def __init__(self, root):
        self.path = tempfile.mkdtemp(prefix="products-search-", dir=root)
        self.schema = build_schema()
        self.index = tantivy.Index(self.schema, path=self.path, reuse=False)
        self.index.register_tokenizer(ANALYZER, words_analyzer())
        self.writer = self.index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)

    def replace(self, rows, deleted_ids=()):
        """Replace (or drop) these products' documents and make the change visible to the next search."""
        for product_id in deleted_ids:
            self.writer.delete_documents_by_term("id", product_id)
        for row in rows:
            self.writer.delete_documents_by_term("id", row.id)
            if row.deleted_at is None:
                self.writer.add_document(document(row))
        self.commit()

    def clear(self):
        self.writer.delete_all_documents()

    def add(self, rows):
        for row in rows:
            if row.deleted_at is None:
                self.writer.add_document(document(row))

    def commit(self):
        # A commit flushes segments for up to seconds on a big build: off the event loop, so RPCs keep answering.
        tpool.execute(self.writer.commit)
        self.index.reload()

    def search(self, filters, window):
        """``(total, ids of the page in sort order)``; the page lies within ``window`` (services/products/window.py)."""
        query = self.query(filters)
        if query is None:
            return 0, []
        sort = filters["sort"]
        order = tantivy.Order.Desc if sort.startswith("-") else tantivy.Order.Asc
        offset = (filters["page"] - 1) * filters["page_size"]
        searcher = self.index.searcher()
        result = searcher.search(query, limit=filters["page_size"], offset=offset, count=True,
                                 order_by_field=SORT_KEYS[sort.lstrip("-")], order=order)
        addresses = [address for _key, address in result.hits]
        ids = searcher.fast_field_values("id", addresses) if addresses else []
        return result.count, ids

    def query(self, filters):
        schema = self.schema
        words = {word.lower() for word in WORD.findall(filters["q"])}
        if not words:
            return None  # ``q`` without a word matches nothing (as on the SQL path)
        # Every word begins a word of the text; words hold only letters and digits, so none needs escaping.
        must = [tantivy.Query.regex_query(schema, "text", f"{word}.*") for word in sorted(words)]
        if filters.get("category_id") is not None:
            must.append(tantivy.Query.term_query(schema, "category_id", filters["category_id"]))
        low, high = filters.get("min_price"), filters.get("max_price")
        if low is not None or high is not None:
            must.append(tantivy.Query.range_query(
                schema, "price_cents", tantivy.FieldType.Integer,
                cents(low) if low is not None else -(2**63), cents(high) if high is not None else 2**63 - 1))
        if filters.get("in_stock"):
            must.append(tantivy.Query.term_query(schema, "in_stock", 1))
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, part) for part in must])

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


class TextIndex(DependencyProvider):
    """The products service's text index (see the module's docstring). Needs the service's ``db`` provider."""

    def __init__(self, database_attr="db"):
        self.database_attr = database_attr
        self.index = None
        self.ready = False
        self.dirty = {}  # product id -> the newest (available, version) a stock event told, or None
        self.wake = None
        self.threads = []

    def setup(self):
        self.refresh_seconds = float(config.get("SEARCH_REFRESH_SECONDS") or DEFAULT_REFRESH_SECONDS)
        # SEARCH_TEXT_INDEX off: every search in SQL, as before the index (for an A/B, or a pod short of memory)
        self.enabled = str(config.get("SEARCH_TEXT_INDEX", True)).lower() not in ("false", "0", "off", "no")
        self.database = declared(self.container, self.database_attr, "TextIndex", "a Database")
        self.index = Index(config.get("SEARCH_INDEX") or None)
        self.wake = eventlet.event.Event()
        self.lock = eventlet.semaphore.Semaphore()  # one writer at a time: a rebuild and a refresh never interleave

    def start(self):
        if not self.enabled:
            return
        self.threads = [self.container.spawn_managed_thread(self._run, identifier="products-text-index")]

    def stop(self):
        for thread in self.threads:
            thread.kill()
        self.threads = []
        if self.index is not None:
            self.index.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self

    # -- what the service calls ----------------------------------------------------------------------------------

    def search(self, filters, window):
        """``(total, ids)`` from the index, or ``None`` while it is not built yet (the caller searches in SQL)."""
        if not self.ready:
            return None
        return self.index.search(filters, window)

    def changed(self, product_id, stock=None):
        """A product changed (``stock``: ``(available, version)`` from a stock event): re-index it shortly."""
        if not isinstance(product_id, int) or not self.enabled:
            return
        known = self.dirty.get(product_id)
        if stock is not None and (known is None or known[1] < stock[1]):
            known = stock
        self.dirty[product_id] = known
        if not self.wake.ready():
            self.wake.send()

    def written(self, product_id):
        """This replica changed the product: index it before the write returns, so that whoever wrote it finds it
        at once here (other replicas follow within ``SEARCH_REFRESH_SECONDS`` of the event)."""
        if not self.ready:
            if self.enabled:
                self.changed(product_id)
            return
        with self.lock:
            self._apply({product_id: self.dirty.pop(product_id, None)})

    def rebuild(self):
        """Re-read the whole table into the index; searches see the old index until the new one is committed."""
        started = time.monotonic()
        with self.lock:
            self.index.clear()
            count = 0
            for rows in self._all_rows():
                self.index.add(rows)
                count += len(rows)
            self.index.commit()
        self.ready = True
        log.info("products text index: %d products indexed in %.1f s", count, time.monotonic() - started)
        return count

    # -- background ------------------------------------------------------------------------------------------------

    @property
    def engine(self):
        return self.database.engine

    def _run(self):
        while not self.ready:
            try:
                self.rebuild()
            except Exception:  # the database may not be up yet: SQL answers meanwhile, the build retries
                log.exception("products text index: build failed, retrying")
                eventlet.sleep(5)
        while True:
            self.wake.wait()
            self.wake = eventlet.event.Event()
            eventlet.sleep(self.refresh_seconds)  # changes that come together are indexed in one commit
            try:
                self._refresh()
            except Exception:
                log.exception("products text index: refresh failed, retrying")
                eventlet.sleep(1)
                if not self.wake.ready():
                    self.wake.send()

    def _refresh(self):
        with self.lock:
            dirty, self.dirty = self.dirty, {}
            if dirty:
                self._apply(dirty)

    def _apply(self, dirty):
        try:
            ids = list(dirty)
            rows = []
            for start in range(0, len(ids), BATCH):
                chunk = ids[start:start + BATCH]
                with self.engine.connect() as connection:
                    rows.extend(connection.execute(select(*PRODUCT_COLUMNS).where(Product.id.in_(chunk))).all())
            found = {row.id for row in rows}
            self.index.replace([with_stock(row, dirty[row.id]) for row in rows],
                               [pid for pid in ids if pid not in found])
        except Exception:
            for product_id, stock in dirty.items():  # not lost: tried again with the next change
                self.dirty.setdefault(product_id, stock)
            raise

    def _all_rows(self):
        last = 0
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(select(*PRODUCT_COLUMNS).where(
                    Product.id > last, Product.deleted_at.is_(None)).order_by(Product.id).limit(BATCH)).all()
            if not rows:
                return
            last = rows[-1].id
            yield rows
            eventlet.sleep(0)  # a build of a million rows lets the workers answer between batches


def with_stock(row, stock):
    """The row, with the stock a stock event told if that is newer than the row's: the replica that applies the
    event may commit it after this replica read the row."""
    if stock is None or stock[1] <= row.stock_version:
        return row
    return SimpleNamespace(**{**row._asdict(), "available": stock[0], "stock_version": stock[1]})
