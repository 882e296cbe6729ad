"""Stock changes, each inside the caller's transaction.

Every change is one conditional UPDATE (or a write under a row lock), never read-modify-write on a value read
earlier, so concurrent workers and replicas cannot oversell; the CHECK constraints are the last line of defence.
Every change bumps ``version``, which lets projections (products' ``available``) ignore stale events.
"""

from collections import defaultdict

from nameko import config
from sqlalchemy import func, select, update
from sqlalchemy.orm.attributes import set_committed_value

from common.errors import Conflict, NotFound
from common.events import utcnow
from services.inventory.models import COMMITTED, RELEASED, RESERVED, Reservation, Stock, StockAdjustment

DEFAULT_LOW_STOCK_THRESHOLD = 5


class ConcurrentChange(Exception):
    """A row changed between our read and our conditional write: run the transaction again."""


def low_stock_threshold(stock):
    if stock.low_stock_threshold is not None:
        return stock.low_stock_threshold
    return int(config.get("LOW_STOCK_THRESHOLD", DEFAULT_LOW_STOCK_THRESHOLD))


def is_low(available, threshold):
    return available < threshold


def find_stock(session, product_id, lock=False):
    return session.get(Stock, product_id, populate_existing=True, with_for_update=lock or None)


def stock_levels(session, product_ids):
    return session.scalars(select(Stock).where(Stock.product_id.in_(product_ids)).order_by(Stock.product_id)).all()


def low_stock(session, limit):
    """Stock rows whose available is below their threshold, the emptiest first (the admin overview)."""
    threshold = func.coalesce(Stock.low_stock_threshold,
                              int(config.get("LOW_STOCK_THRESHOLD", DEFAULT_LOW_STOCK_THRESHOLD)))
    available = Stock.on_hand - Stock.reserved
    return session.scalars(select(Stock).where(available < threshold)
                           .order_by(available, Stock.product_id).limit(limit)).all()


def set_stock(session, product_id, on_hand, threshold=None):
    """Upsert; returns ``(stock, was_low)`` where ``was_low`` is None for a new row."""
    stock = find_stock(session, product_id, lock=True)
    if stock is None:
        return add_stock(session, product_id, on_hand, threshold), None
    if on_hand < stock.reserved:
        raise Conflict(f"Product {product_id} has {stock.reserved} reserved; on hand cannot go below that.",
                       details={"product_id": product_id, "on_hand": on_hand, "reserved": stock.reserved},
                       code="stock_below_reserved")
    was_low = is_low(stock.available, low_stock_threshold(stock))
    stock.on_hand = on_hand
    if threshold is not None:
        stock.low_stock_threshold = threshold
    stock.version += 1
    stock.updated_at = utcnow()
    return stock, was_low


def adjust_stock(session, product_id, delta, reason, idempotency_key):
    """Change ``on_hand`` by ``delta`` once per key; returns ``(stock, was_low)``, ``was_low`` None for a repeat.

    One conditional UPDATE, so concurrent adjustments and reservations can never take on hand below reserved.
    The key's row is written in the same transaction: a concurrent repeat fails on it and its retry finds it."""
    earlier = session.get(StockAdjustment, idempotency_key, populate_existing=True)
    if earlier is not None:
        if (earlier.product_id, earlier.delta) != (product_id, delta):
            raise Conflict("This idempotency key was used for another adjustment.",
                           details={"product_id": earlier.product_id, "delta": earlier.delta},
                           code="idempotency_key_reused")
        return require_stock(session, product_id), None
    if not move_stock(session, product_id, on_hand=delta, only_if_on_hand_covers=delta):
        stock = require_stock(session, product_id, lock=True)
        raise Conflict(f"Product {product_id} has {stock.on_hand} on hand and {stock.reserved} reserved; "
                       f"an adjustment of {delta} would take on hand below the reserved quantity.",
                       details={"product_id": product_id, "on_hand": stock.on_hand, "reserved": stock.reserved,
                                "delta": delta}, code="stock_below_reserved")
    session.add(StockAdjustment(idempotency_key=idempotency_key, product_id=product_id, delta=delta,
                                reason=reason, created_at=utcnow()))
    session.flush()
    stock = find_stock(session, product_id)
    return stock, is_low(stock.available - delta, low_stock_threshold(stock))


def require_stock(session, product_id, lock=False):
    stock = find_stock(session, product_id, lock=lock)
    if stock is None:
        raise NotFound(f"No stock for product {product_id}.", code="stock_not_found")
    return stock


def add_stock(session, product_id, on_hand, threshold=None):
    """Insert a new row; a concurrent insert makes the flush raise IntegrityError (the caller retries)."""
    stock = Stock(product_id=product_id, on_hand=on_hand, reserved=0, low_stock_threshold=threshold,
                  version=1, updated_at=utcnow())
    session.add(stock)
    session.flush()
    return stock


def merge_lines(items):
    """One line per product, in product order: the same lock order everywhere, so no deadlock cycles."""
    quantities = defaultdict(int)
    for item in items:
        quantities[item["product_id"]] += item["quantity"]
    return sorted(quantities.items())


def reserve(session, order_key, lines):
    """Hold every line or none; returns ``[(stock, quantity, was_low)]`` or raises insufficient_stock."""
    reserved, short = [], []
    for product_id, quantity in lines:
        if move_stock(session, product_id, reserved=quantity, only_if_available=quantity):
            stock = find_stock(session, product_id)
            reserved.append((stock, quantity, is_low(stock.available + quantity, low_stock_threshold(stock))))
        else:
            short.append((product_id, quantity))
    if short:
        raise insufficient_stock(session, short)
    now = utcnow()
    session.add_all(Reservation(order_id=order_key, product_id=stock.product_id, quantity=quantity,
                                status=RESERVED, created_at=now, updated_at=now)
                    for stock, quantity, _ in reserved)
    session.flush()  # a concurrent reserve for the same order fails here, and the retry finds its rows
    return reserved


def insufficient_stock(session, short):
    # A locking read: a plain one would show MySQL's transaction snapshot, which may predate the failed UPDATE.
    rows = session.scalars(select(Stock).where(Stock.product_id.in_([p for p, _ in short])).with_for_update(read=True)
                           .execution_options(populate_existing=True))
    available = {s.product_id: s.available for s in rows}
    products = [{"product_id": p, "requested": q, "available": max(available.get(p, 0), 0)} for p, q in short]
    return Conflict("Not enough stock for some products.", details={"products": products},
                    code="insufficient_stock")


def reservations_of(session, order_key):
    return session.scalars(
        select(Reservation).where(Reservation.order_id == order_key).order_by(Reservation.product_id)
        .execution_options(populate_existing=True)
    ).all()


def commit(session, order_key):
    """Reserved stock leaves the shelf: ``reserved`` and ``on_hand`` both drop. Returns ``(rows, changes)``."""
    rows = reservations_of(session, order_key)
    if not rows:
        raise NotFound(f"No reservation for order {order_key}.", code="reservation_not_found")
    if any(row.status == RELEASED for row in rows):
        raise Conflict(f"The reservation of order {order_key} was released.", code="reservation_released")
    changes = []
    for row in rows:
        if row.status == RESERVED:
            claim(session, row, RESERVED, COMMITTED)
            move_stock(session, row.product_id, on_hand=-row.quantity, reserved=-row.quantity)
            changes.append((find_stock(session, row.product_id), row.quantity))
    return rows, changes


def release(session, order_key):
    """Held stock goes back: a reservation frees ``reserved``; a committed one returns to ``on_hand``."""
    rows = reservations_of(session, order_key)
    changes = []
    for row in rows:
        if row.status == RELEASED:
            continue
        if row.status == RESERVED:
            move_stock(session, row.product_id, reserved=-row.quantity)
        else:
            move_stock(session, row.product_id, on_hand=row.quantity)
        claim(session, row, row.status, RELEASED)
        changes.append((find_stock(session, row.product_id), row.quantity))
    return rows, changes


def claim(session, row, from_status, to_status):
    now = utcnow()
    result = session.execute(
        update(Reservation).where(Reservation.id == row.id, Reservation.status == from_status)
        .values(status=to_status, updated_at=now).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentChange(f"reservation {row.id} left {from_status}")
    # what the UPDATE just wrote, without marking the row changed: a plain assignment flushed a second UPDATE
    set_committed_value(row, "status", to_status)
    set_committed_value(row, "updated_at", now)


def move_stock(session, product_id, on_hand=0, reserved=0, only_if_available=None, only_if_on_hand_covers=None):
    """One atomic UPDATE; with ``only_if_available`` it matches only while that much is still available, with
    ``only_if_on_hand_covers`` only while on hand plus that (a negative adjustment) still covers the reserved."""
    condition = [Stock.product_id == product_id]
    if only_if_available is not None:
        condition.append(Stock.on_hand - Stock.reserved >= only_if_available)
    if only_if_on_hand_covers is not None:
        condition.append(Stock.on_hand + only_if_on_hand_covers >= Stock.reserved)
    result = session.execute(
        update(Stock).where(*condition)
        .values(on_hand=Stock.on_hand + on_hand, reserved=Stock.reserved + reserved,
                version=Stock.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
