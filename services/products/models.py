"""The catalogue's tables: categories, products (with the stock projection), outbox, processed events."""

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
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase

from common.events import ProcessedEventMixin, utcnow
from common.outbox import OutboxMessageMixin

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
    )


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


SORT_COLUMNS = {"name": Product.name, "price": Product.price, "created_at": Product.created_at}
TEXT_COLUMNS = (Product.name, Product.description, Product.sku)
LIKE_ESCAPE = "/"


def live_products():
    return select(Product).where(Product.deleted_at.is_(None))


def contains_pattern(q):
    """``%q%`` with LIKE's wildcards in ``q`` escaped.

    Plain LIKE, not ``lower(column) LIKE lower(...)``: the columns' collations already ignore case (MySQL's
    default ``_ci`` collation; SQLite's LIKE folds ASCII case, as its ``lower()`` does), and ``lower()`` on every
    row doubled the cost of the full scan a substring search is.
    """
    escaped = q.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"


def search_conditions(filters):
    conditions = [Product.deleted_at.is_(None)]
    if filters.get("q"):
        pattern = contains_pattern(filters["q"])
        conditions.append(or_(*(column.like(pattern, escape=LIKE_ESCAPE) for column in TEXT_COLUMNS)))
    if filters.get("category_id") is not None:
        conditions.append(Product.category_id == filters["category_id"])
    if filters.get("min_price") is not None:
        conditions.append(Product.price >= filters["min_price"])
    if filters.get("max_price") is not None:
        conditions.append(Product.price <= filters["max_price"])
    if filters.get("in_stock"):
        conditions.append(Product.available > 0)
    return conditions


def search_products(session, filters):
    """One count and one page query; ``filters`` come from ``ProductSearchSchema``. Returns (total, products)."""
    conditions = search_conditions(filters)
    total = session.scalar(select(func.count(Product.id)).where(*conditions))
    page, page_size = filters["page"], filters["page_size"]
    if total <= (page - 1) * page_size:
        return total, []
    sort = filters["sort"]
    column = SORT_COLUMNS[sort.lstrip("-")]
    # Tie-break on id so equal values never swap places between pages.
    order = (column.desc(), Product.id.desc()) if sort.startswith("-") else (column.asc(), Product.id.asc())
    page_query = (select(Product).where(*conditions).order_by(*order)
                  .limit(page_size).offset((page - 1) * page_size))
    return total, session.scalars(page_query).all()


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
