"""The catalogue's tables: categories, products (with the stock projection), outbox, processed events."""

import re

from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    and_,
    column,
    false,
    func,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.dialects.mysql import match
from sqlalchemy.orm import DeclarativeBase

from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin
from services.products.window import DEFAULT_WINDOW

# Ids are BIGINT on MySQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer, "sqlite")


def ci_string(length):
    """Case-insensitive text on both databases (MySQL's default collation already is; SQLite needs NOCASE)."""
    return String(length).with_variant(String(length, collation="NOCASE"), "sqlite")


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "categories"

    id = Column(Id, primary_key=True, autoincrement=True)
    name = Column(ci_string(100), nullable=False)
    description = Column(Text, nullable=True)
    parent_id = Column(Id, ForeignKey("categories.id", name="fk_categories_parent_id"), nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("name", name="uq_categories_name"),
        Index("ix_categories_parent_id", "parent_id"),
    )


TEXT_INDEX = "ix_products_text"
TEXT_TABLE = "products_fts"


class Product(Base):
    __tablename__ = "products"

    id = Column(Id, primary_key=True, autoincrement=True)
    # Unique across deleted products too: a sku names one product forever (past orders quote it).
    sku = Column(ci_string(64), nullable=False)
    name = Column(ci_string(200), nullable=False)
    description = Column(Text, nullable=True)
    price = Column(Numeric(12, 2), nullable=False)
    currency = Column(CHAR(3), nullable=False, default="USD")
    category_id = Column(Id, ForeignKey("categories.id", name="fk_products_category_id"), nullable=True)
    available = Column(Integer, nullable=False, default=0)
    stock_version = Column(BigInteger, nullable=False, default=0)
    deleted_at = Column(DateTime, nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("sku", name="uq_products_sku"),
        # Searches without a category: walk (column, id) in sort order; deleted rows are rare, so few are skipped.
        Index("ix_products_name", "name"),
        Index("ix_products_price", "price"),
        Index("ix_products_created_at", "created_at"),
        # Searches in a category (also the foreign key's index): the live rows of the category in sort order, with
        # ``available`` beside price, so a count by category, price window and stock reads the index alone.
        Index("ix_products_category_live_name", "category_id", "deleted_at", "name", "id"),
        Index("ix_products_category_live_price", "category_id", "deleted_at", "price", "id", "available"),
        Index("ix_products_category_live_created", "category_id", "deleted_at", "created_at", "id"),
        # Text search (revision 0003). On SQLite the FTS5 table ``products_fts`` and its triggers do this job.
        Index(TEXT_INDEX, "name", "description", "sku", mysql_prefix="FULLTEXT").ddl_if(dialect="mysql"),
    )


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


SORT_COLUMNS = {"name": Product.name, "price": Product.price, "created_at": Product.created_at}
TEXT_COLUMNS = (Product.name, Product.description, Product.sku)
PRODUCT_COLUMNS = tuple(Product.__table__.columns)
# SQLite's FTS5 table over TEXT_COLUMNS (external content: it holds only the index; rowid = products.id).
PRODUCTS_FTS = table(TEXT_TABLE, column("rowid"), column(TEXT_TABLE))
WORD = re.compile(r"[^\W_]+")
# What InnoDB leaves out of a FULLTEXT index with its default settings: words shorter than
# innodb_ft_min_token_size or longer than innodb_ft_max_token_size, and INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD.
FULLTEXT_MIN_WORD, FULLTEXT_MAX_WORD = 3, 84
FULLTEXT_STOPWORDS = frozenset(
    "a about an are as at be by com de en for from how i in is it la of on or that the this to was what when where "
    "who will with und www".split())


def live_products():
    return select(Product).where(Product.deleted_at.is_(None))


def query_words(q):
    """The words of ``q`` (runs of letters and digits), each once whatever its case.

    Only these reach MATCH/AGAINST and FTS5, so no character of ``q`` is ever read as an operator. They keep their
    case: both indexes fold it themselves, and ``lower()`` can add a combining mark (to a dotted capital I).
    """
    words = {}
    for word in WORD.findall(q):
        words.setdefault(word.lower(), word)
    return list(words.values())


def text_condition(q, dialect):
    """Every word of ``q`` begins a word of the name, description or sku; ``q`` without words matches nothing."""
    words = query_words(q)
    if not words:
        return false()
    if dialect == "sqlite":
        return fts5_condition(words)
    return fulltext_condition(words)


def fts5_condition(words):
    expression = " ".join(f'"{word}"*' for word in words)
    return Product.id.in_(select(PRODUCTS_FTS.c.rowid).where(PRODUCTS_FTS.c[TEXT_TABLE].match(expression)))


def fulltext_condition(words):
    indexed = [word for word in words if fulltext_holds(word)]
    conditions = [word_start_condition(word) for word in words if word not in indexed]
    if indexed:
        against = " ".join(f"+{word}*" for word in indexed)
        conditions.insert(0, match(*TEXT_COLUMNS, against=against).in_boolean_mode())
    return and_(*conditions)


def fulltext_holds(word):
    """Whether InnoDB's index has every word that ``word`` begins: ``wit`` also begins "with", a stopword."""
    if not FULLTEXT_MIN_WORD <= len(word) <= FULLTEXT_MAX_WORD:
        return False
    return not any(stopword.startswith(word.lower()) for stopword in FULLTEXT_STOPWORDS)


def word_start_condition(word):
    """A word the index cannot answer: a scan for it at the start of a word of any text column.

    The LIKE is the cheap filter, the regular expression the exact one (the word starts the text or follows a
    character that is neither a letter nor a digit). ``word`` holds only letters and digits, so nothing needs
    escaping in either pattern.
    """
    start = rf"(?i)(^|[^\p{{L}}\p{{N}}]){word}"
    return or_(*(and_(text.like(f"%{word}%"), text.regexp_match(start)) for text in TEXT_COLUMNS))


def search_conditions(filters, dialect):
    conditions = [Product.deleted_at.is_(None)]
    if filters.get("q"):
        conditions.append(text_condition(filters["q"], dialect))
    if filters.get("category_id") is not None:
        conditions.append(Product.category_id == filters["category_id"])
    if filters.get("min_price") is not None:
        conditions.append(Product.price >= filters["min_price"])
    if filters.get("max_price") is not None:
        conditions.append(Product.price <= filters["max_price"])
    if filters.get("in_stock"):
        conditions.append(Product.available > 0)
    return conditions


def search_products(session, filters, window=DEFAULT_WINDOW):
    """``filters`` come from ``ProductSearchSchema``. Returns (total, the page's product rows in sort order); a total
    above ``window`` is only known to be above it (services/products/window.py).

    Rows, not ORM objects: a page is only read and dumped, and the ORM's identity map and per-object state were a
    third of a search's CPU.
    """
    conditions = search_conditions(filters, session.get_bind().dialect.name)
    search = text_search if filters.get("q") else filter_search
    return search(session, conditions, sort_order(filters["sort"]), filters["page"], filters["page_size"], window)


def sort_order(sort):
    column = SORT_COLUMNS[sort.lstrip("-")]
    # Tie-break on id so equal values never swap places between pages.
    return (column.desc(), Product.id.desc()) if sort.startswith("-") else (column.asc(), Product.id.asc())


def count_matches(session, conditions, window):
    """The number of matches, or ``window + 1`` when there are more: the count stops there."""
    matches = select(Product.id).where(*conditions).limit(window + 1).subquery()
    return session.scalar(select(func.count()).select_from(matches))


def filter_search(session, conditions, order, page, page_size, window):
    """One count and one page query: the count reads an index alone and the page stops after a page of it."""
    total = count_matches(session, conditions, window)
    if total <= (page - 1) * page_size:
        return total, []
    page_query = (select(*PRODUCT_COLUMNS).where(*conditions).order_by(*order)
                  .limit(page_size).offset((page - 1) * page_size))
    return total, session.execute(page_query).all()


def text_search(session, conditions, order, page, page_size, window):
    """The text index's matches are visited once, for the total and the page's ids together, then the page's rows
    are read by id: a count and a page query would each repeat the index lookup and a row read per match, which is
    most of a search's time when a word matches thousands of products."""
    rows = session.execute(select(Product.id, func.count().over()).where(*conditions).order_by(*order)
                           .limit(page_size).offset((page - 1) * page_size)).all()
    if not rows:  # nothing matched, or past the last page: the total needs a count of its own
        return (count_matches(session, conditions, window) if page > 1 else 0), []
    return rows[0][1], products_by_id(session, [product_id for product_id, _ in rows])


def products_by_id(session, ids):
    """The live products' rows of ``ids``, in that order (an id deleted since the text index answered is left out)."""
    if not ids:
        return []
    rows = {row.id: row for row in session.execute(select(*PRODUCT_COLUMNS).where(
        Product.id.in_(ids), Product.deleted_at.is_(None)))}
    return [rows[product_id] for product_id in ids if product_id in rows]


def is_taken(session, attribute, value, owner=None):
    """Whether a row other than ``owner`` holds ``value`` in a unique column (case-insensitive on both databases)."""
    model = attribute.class_
    query = select(model.id).where(attribute == value)
    if owner is not None:
        query = query.where(model.id != owner.id)
    return session.scalar(query.limit(1)) is not None


def live_products_in_category(session, category_id):
    return session.scalar(select(func.count(Product.id)).where(
        Product.category_id == category_id, Product.deleted_at.is_(None)))


def detach_deleted_products(session, category_id):
    """Deleted products keep no category, so the category can go (their rows stay for history)."""
    session.execute(update(Product).where(Product.category_id == category_id)
                    .values(category_id=None, updated_at=Product.updated_at)
                    .execution_options(synchronize_session=False))


def apply_stock_level(session, product_id, available, version):
    """Set the projection only from a newer stock version, atomically, so late or concurrent events never regress it.

    Returns whether the product changed.
    """
    result = session.execute(
        update(Product).where(Product.id == product_id, Product.stock_version < version)
        .values(available=available, stock_version=version, updated_at=Product.updated_at)
        .execution_options(synchronize_session=False))
    return result.rowcount > 0
