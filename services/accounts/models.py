"""The accounts service's tables: one row per user, kept (soft-deleted) after the account is closed; the outbox.

Email, name and phone are stored encrypted (``common.crypto``); the email is found by its blind index. An erased
account keeps its row (its id must never be handed out again: orders refer to it) with every personal field NULL.
"""

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase

from common.crypto import Encrypted, session_keyring
from common.events import utcnow
from common.outbox import OutboxMessageMixin

CUSTOMER, ADMIN = "customer", "admin"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_active_email_index", "active_email_index", unique=True),
        CheckConstraint("role IN ('customer', 'admin')", name="ck_users_role"),
    )

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    email = Column(Encrypted("users.email"), nullable=True)  # always lower case; NULL once erased
    # The email's blind index while the account is live, NULL once deleted: unique among live accounts only, so a
    # closed account's address can register again (NULLs never collide in a unique index, on SQLite or MariaDB).
    active_email_index = Column(String(64), nullable=True)
    password_hash = Column(String(255), nullable=False)
    name = Column(Encrypted("users.name"), nullable=True)
    phone = Column(Encrypted("users.phone"), nullable=True)
    role = Column(String(16), nullable=False, default=CUSTOMER)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    deleted_at = Column(DateTime, nullable=True)
    erased_at = Column(DateTime, nullable=True)

    def erase(self, now):
        """Forget every personal field for good; the row stays as the tombstone of its id."""
        self.email = self.name = self.phone = self.active_email_index = None
        self.password_hash = ""
        self.deleted_at = self.deleted_at or now
        self.erased_at = now


class OutboxMessage(OutboxMessageMixin, Base):
    envelope = Column(Encrypted("outbox.envelope"), nullable=False)


def live_user(session, user_id):
    user = session.get(User, user_id)
    return user if user is not None and user.deleted_at is None else None


def email_index(session, email):
    return session_keyring(session).blind_index(email)


def live_user_by_email(session, email):
    return session.scalars(select(User).where(User.active_email_index == email_index(session, email))).first()


def page_of_live_users(session, email, page, page_size):
    """Live accounts, newest first; ``email`` matches any part of the address (case-insensitively).

    The addresses are encrypted, so a part-of-address search decrypts every live account's email (the admin
    panel's customer search; login goes through the blind index instead).
    """
    query = select(User).where(User.deleted_at.is_(None)).order_by(User.id.desc())
    if email:
        wanted = email.lower()
        matching = [user for user in session.scalars(query) if wanted in user.email]
        return matching[(page - 1) * page_size:page * page_size], len(matching)
    users = session.scalars(query.offset((page - 1) * page_size).limit(page_size)).all()
    return users, session.scalar(select(func.count()).select_from(query.subquery()))
