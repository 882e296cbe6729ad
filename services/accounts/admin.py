"""The admin account from ``ADMIN_EMAIL`` / ``ADMIN_PASSWORD`` exists, with that password, once the service is up.

Replicas start at the same time: the loser of the insert race retries and finds the winner's row. Nameko starts the
RPC consumer beside this provider, not after it, so a login can arrive while the password is still being hashed:
``wait`` holds it until the bootstrap is over (a system test's first admin login came 0.1 s too early and got 401).
"""

import logging

import eventlet
import eventlet.event
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy.exc import IntegrityError, OperationalError

from common.db import Database
from schemas.accounts import normalise_email
from services.accounts.models import ADMIN, User, email_index, live_user_by_email
from services.accounts.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

ATTEMPTS = 5
WAIT_SECONDS = 30


class AdminAccount(DependencyProvider):
    def setup(self):
        self.bootstrapped = eventlet.event.Event()

    def start(self):
        try:
            self._bootstrap()
        finally:
            self.bootstrapped.send()

    def get_dependency(self, worker_ctx):
        return self

    def wait(self, timeout=WAIT_SECONDS):
        """Returns once the bootstrap is over (or after ``timeout``: a failed one stops the container anyway)."""
        with eventlet.Timeout(timeout, False):
            self.bootstrapped.wait()

    def _bootstrap(self):
        email, password = config.get("ADMIN_EMAIL"), config.get("ADMIN_PASSWORD")
        if not email or not password:
            log.warning("ADMIN_EMAIL/ADMIN_PASSWORD not set: no admin account is guaranteed")
            return
        database = next(dep for dep in self.container.dependencies if isinstance(dep, Database))
        for attempt in range(1, ATTEMPTS + 1):
            try:
                ensure_admin(database.Session, normalise_email(email), password)
                return
            except (IntegrityError, OperationalError):
                if attempt == ATTEMPTS:
                    raise
                log.info("admin bootstrap raced another replica; retrying", exc_info=True)
                eventlet.sleep(0.05 * attempt)


def ensure_admin(make_session, email, password):
    with make_session(close_on_exit=True) as session:
        current = live_user_by_email(session, email)
        ready = current is not None and current.role == ADMIN
        current_hash = current.password_hash if current else None
    if ready and verify_password(current_hash, password):
        return
    new_hash = hash_password(password)  # outside the transaction, see passwords.py
    with make_session(close_on_exit=True) as session:
        user = live_user_by_email(session, email)
        if user is None:
            session.add(User(email=email, active_email_index=email_index(session, email), name="Administrator",
                             role=ADMIN, password_hash=new_hash))
        else:
            user.role, user.password_hash = ADMIN, new_hash
    log.info("admin account %s is ready", email)
