"""Accounts: who may log in, as what.

RPC (see docs/architecture.md): ``register``, ``authenticate``, ``get_user``, ``list_users(email=None, page=1,
page_size=20)`` (live accounts, newest first, email matching in part), ``delete_user``, ``erase_user``. A user is
``{id, email, name, phone, role, created_at}``; emails are unique (case-insensitively) among live accounts.
Events (outbox): ``user.deleted`` ``{id, deleted_at}`` (the gateway locks the account's tokens out on it);
``user.erased`` ``{id, erased_at}`` (the same, and orders and notifications forget the account's personal data).
"""

from sqlalchemy.exc import IntegrityError

from common.correlation import CorrelationId
from common.db import Database
from common.errors import Conflict, NotFound, Unauthorized
from common.events import utcnow
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import rpc
from common.validation import load, load_id
from schemas.accounts import CredentialsSchema, RegisterSchema, UserQuerySchema, UserSchema
from schemas.common import page_of, rfc3339
from services.accounts.admin import AdminAccount
from services.accounts.models import (
    Base,
    OutboxMessage,
    User,
    email_index,
    live_user,
    live_user_by_email,
    page_of_live_users,
)
from services.accounts.passwords import hash_password, needs_rehash, verify_password, waste_a_verification


class AccountsService(Operational):
    name = "accounts"

    db = Database(Base, session_options={"expire_on_commit": False})
    outbox = Outbox(OutboxMessage)
    admin = AdminAccount()
    correlation = CorrelationId()
    metrics = Metrics()

    @rpc
    def register(self, email, password, name, phone=None):
        data = load(RegisterSchema(), {"email": email, "password": password, "name": name, "phone": phone})
        password_hash = hash_password(data.pop("password"))
        with self.db.get_session() as session:
            if live_user_by_email(session, data["email"]) is not None:
                raise email_taken()
            user = User(**data, active_email_index=email_index(session, data["email"]), password_hash=password_hash)
            session.add(user)
            try:
                session.flush()
            except IntegrityError:  # a concurrent registration won
                raise email_taken() from None
        return UserSchema().dump(user)

    @rpc
    def authenticate(self, email, password):
        credentials = load(CredentialsSchema(), {"email": email, "password": password})
        self.admin.wait()  # the configured admin may be the one logging in
        with self.db.get_session() as session:
            user = live_user_by_email(session, credentials["email"])
        if user is None:
            waste_a_verification(credentials["password"])
            raise invalid_credentials()
        if not verify_password(user.password_hash, credentials["password"]):
            raise invalid_credentials()
        if needs_rehash(user.password_hash):
            self._store_password_hash(user.id, hash_password(credentials["password"]))
        return UserSchema().dump(user)

    @rpc
    def get_user(self, user_id):
        with self.db.get_session() as session:
            return UserSchema().dump(self._live_user(session, user_id))

    @rpc(read_only=True)
    def list_users(self, email=None, page=1, page_size=20):
        query = load(UserQuerySchema(), {key: value for key, value in (
            ("email", email), ("page", page), ("page_size", page_size)) if value is not None})
        with self.db.get_session() as session:
            users, total = page_of_live_users(session, query.get("email"), query["page"], query["page_size"])
            return page_of(UserSchema(many=True).dump(users), query["page"], query["page_size"], total)

    @rpc
    def delete_user(self, user_id):
        with self.db.get_session() as session:
            user = self._live_user(session, user_id)
            user.deleted_at, user.active_email_index = utcnow(), None
            self.outbox.add(session, "user.deleted", user.id,
                            {"id": user.id, "deleted_at": rfc3339(user.deleted_at)})

    @rpc
    def erase_user(self, user_id):
        """Erase the account's personal data for good (a closed account too); ``NotFound`` once erased."""
        with self.db.get_session() as session:
            user = session.get(User, load_id(user_id, "user_id"))
            if user is None or user.erased_at is not None:
                raise NotFound(f"User {user_id} not found.", code="user_not_found")
            user.erase(utcnow())
            self.outbox.add(session, "user.erased", user.id, {"id": user.id, "erased_at": rfc3339(user.erased_at)})

    def _live_user(self, session, user_id):
        user = live_user(session, load_id(user_id, "user_id"))
        if user is None:
            raise NotFound(f"User {user_id} not found.", code="user_not_found")
        return user

    def _store_password_hash(self, user_id, password_hash):
        with self.db.get_session() as session:
            session.get(User, user_id).password_hash = password_hash


def email_taken():
    return Conflict("An account with this email already exists.", details={"email": ["Already registered."]},
                    code="email_taken")


def invalid_credentials():
    return Unauthorized("Invalid email or password.", code="invalid_credentials")
