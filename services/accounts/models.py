"""The accounts service's tables: one row per user, kept (soft-deleted) after the account is closed; the outbox."""

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase

from common.events import utcnow
from common.outbox import OutboxMessageMixin

CUSTOMER, ADMIN = "customer", "admin"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_active_email", "active_email", unique=True),
        CheckConstraint("role IN ('customer', 'admin')", name="ck_users_role"),
    )

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    email = Column(String(254), nullable=False, index=True)  # always lower case
    # The email while the account is live, NULL once deleted: unique among live accounts only, so a closed
    # account's address can register again (NULLs never collide in a unique index, on SQLite or MariaDB).
    active_email = Column(String(254), nullable=True)
    password_hash = Column(String(255), nullable=False)
    name = Column(String(100), nullable=False)
    phone = Column(String(32), nullable=True)
    role = Column(String(16), nullable=False, default=CUSTOMER)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    deleted_at = Column(DateTime, nullable=True)


class OutboxMessage(OutboxMessageMixin, Base):
    pass


def live_user(session, user_id):
    user = session.get(User, user_id)
    return user if user is not None and user.deleted_at is None else None


def live_user_by_email(session, email):
    return session.scalars(select(User).where(User.active_email == email)).first()


def page_of_live_users(session, email, page, page_size):
    """Live accounts, newest first; ``email`` matches any part of the address (case-insensitively)."""
    query = select(User).where(User.deleted_at.is_(None))
    if email:
        escaped = email.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(User.email.like(f"%{escaped}%", escape="\\"))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    users = session.scalars(query.order_by(User.id.desc()).offset((page - 1) * page_size).limit(page_size)).all()
    return users, total
