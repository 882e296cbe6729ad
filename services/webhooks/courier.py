"""How a delivery goes out: the URL check, the signed POST, and one courier greenlet per webhook.

``Couriers`` (a DependencyProvider) runs a supervisor greenlet that starts a courier for every webhook with a due
delivery; a courier sends that webhook's due deliveries one by one and ends when none is due. So a slow or dead
receiver only ever holds its own courier, each attempt is bounded (``WEBHOOK_TIMEOUT_SECONDS`` for the whole
exchange), and the event handler that records deliveries never waits on a receiver.
"""

import hashlib
import hmac
import ipaddress
import logging
import socket
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import NamedTuple
from urllib.parse import urlsplit

import eventlet
from eventlet.event import Event
from nameko import config
from nameko.extensions import DependencyProvider
from tenacity import wait_exponential_jitter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout

from common.dependencies import declared
from common.events import utcnow
from services.webhooks.models import (
    ERROR_LENGTH,
    Delivery,
    Webhook,
    due_heads,
    end_lease,
    next_retry_at,
    take_lease,
    webhooks_with_work,
)

log = logging.getLogger(__name__)

USER_AGENT = "pos-webhooks/1"
DNS_TIMEOUT_SECONDS = 5
BATCH = 20  # deliveries a courier sends between renewals of its lease
DEFAULTS = {
    "WEBHOOK_TIMEOUT_SECONDS": 10, "WEBHOOK_POLL_SECONDS": 1, "WEBHOOK_IDLE_POLL_MAX_SECONDS": 10,
    "WEBHOOK_RETRY_INITIAL_SECONDS": 10,
    "WEBHOOK_RETRY_MAX_SECONDS": 3600, "WEBHOOK_GIVE_UP_SECONDS": 86400, "WEBHOOK_MAX_RESPONSE_BYTES": 65536,
}


def setting(name):
    value = config.get(name)
    return float(DEFAULTS[name] if value in (None, "") else value)


def public_only():
    """uat/prod: https to public addresses only. Off in dev and tests, whose receivers are on loopback."""
    return str(config.get("WEBHOOK_PUBLIC_ONLY", "false")).lower() in ("1", "true", "yes")


class Refused(Exception):
    """The URL may not be called (scheme, or an address that is not public): no request is made."""


class Target(NamedTuple):
    scheme: str
    host: str
    port: int
    address: str
    path: str


def allowed_address(text, public):
    address = ipaddress.ip_address(text.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return not public or (address.is_global and not address.is_multicast)


def resolve(url, public=None):
    """Where ``url`` may be called now: checked after DNS resolution (every address the name has), on every attempt."""
    public = public_only() if public is None else public
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or (public and parts.scheme != "https"):
        raise Refused("the URL must be https" if public else "the URL must be http(s)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = eventlet.Timeout(DNS_TIMEOUT_SECONDS)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"the host does not resolve ({exc.__class__.__name__})") from None
    except eventlet.Timeout as exc:
        if exc is not deadline:  # the whole attempt's, not ours
            raise
        raise Refused("the host does not resolve (timeout)") from None
    finally:
        deadline.cancel()
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(allowed_address(address, public) for address in addresses):
        raise Refused("the host resolves to an address that is not public")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, addresses[0], path)


def signature(secret, body, timestamp):
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Outcome(NamedTuple):
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def succeeded(self):
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url, secret, body, headers, timeout, max_response_bytes):
    """One attempt: POST ``body`` signed with ``secret``; never follows a redirect, reads a bounded answer."""
    started = time.monotonic()

    def outcome(status, error=None):
        return Outcome(status, int((time.monotonic() - started) * 1000), error and error[:ERROR_LENGTH])

    deadline = eventlet.Timeout(timeout)
    try:
        target = resolve(url)
        status = _exchange(target, body, {**headers, "X-POS-Signature": signature(secret, body, int(time.time()))},
                           timeout, max_response_bytes)
    except eventlet.Timeout as exc:
        if exc is not deadline:
            raise
        return outcome(None, f"no answer within {timeout:g} s")
    except Refused as exc:
        return outcome(None, f"refused: {exc}")
    except Exception as exc:  # connection refused, TLS, protocol errors: retried like a bad status
        return outcome(None, without_query(f"{type(exc).__name__}: {exc}", url))
    finally:
        deadline.cancel()
    return outcome(status, None if 200 <= status < 300 else f"HTTP {status}")


def without_query(text, url):
    """An error as recorded and logged: a URL's query may hold the receiver's own token."""
    query = urlsplit(url).query
    return text.replace(query, "...") if query else text


def _exchange(target, body, headers, timeout, max_response_bytes):
    """The request, to the address that was checked (not a second lookup); the Host header and TLS name the host."""
    options = {"timeout": Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = HTTPSConnectionPool(target.address, target.port, server_hostname=target.host,
                                   assert_hostname=target.host, cert_reqs="CERT_REQUIRED", **options)
    else:
        pool = HTTPConnectionPool(target.address, target.port, **options)
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    try:
        response = pool.urlopen("POST", target.path, body=body, redirect=False, preload_content=False,
                                assert_same_host=False,
                                headers={"Host": host_header, "Content-Type": "application/json",
                                         "User-Agent": USER_AGENT, **headers})
        response.read(int(max_response_bytes))  # what a receiver says is not used; only so much is read
        return response.status
    finally:
        pool.close()


def retry_delay(attempt):
    """Growing, jittered delays between a delivery's attempts (tenacity's exponential back-off with jitter)."""
    initial = setting("WEBHOOK_RETRY_INITIAL_SECONDS")
    wait = wait_exponential_jitter(initial=initial, max=setting("WEBHOOK_RETRY_MAX_SECONDS"), jitter=initial)
    return timedelta(seconds=wait(SimpleNamespace(attempt_number=attempt)))


class Couriers(DependencyProvider):
    """One greenlet per webhook with work; ``kick()`` (workers that recorded deliveries) wakes the supervisor."""

    def __init__(self, database="db"):
        self.database_name = database

    def setup(self):
        self.database = declared(self.container, self.database_name, "Couriers")
        self.busy = {}
        self.identity = str(uuid.uuid4())
        self.running = False
        self.wakeup = Event()

    def start(self):
        self.running = True
        self.supervisor = self.container.spawn_managed_thread(self.supervise, identifier="webhooks.supervisor")

    def stop(self):
        self.running = False
        self.kick()
        self.supervisor.wait()
        for courier in list(self.busy.values()):
            courier.wait()

    def kill(self):
        self.running = False
        for thread in [self.supervisor, *self.busy.values()]:
            thread.kill()

    def get_dependency(self, worker_ctx):
        return self

    def kick(self):
        if not self.wakeup.ready():
            self.wakeup.send(True)

    def supervise(self):
        """Look for webhooks with due deliveries whenever kicked (a delivery was recorded here), else poll: every
        ``WEBHOOK_POLL_SECONDS`` while there is work, doubling up to ``WEBHOOK_IDLE_POLL_MAX_SECONDS`` while
        there is none. Polling finds what a kick cannot: retries coming due, and deliveries that another replica
        recorded, or left behind when it crashed (its lease runs out)."""
        delay = setting("WEBHOOK_POLL_SECONDS")
        while self.running:
            now = utcnow()
            try:
                with self.database.Session(close_on_exit=True) as session:
                    ids = webhooks_with_work(session, now)
                    retry_at = None if ids or self.busy else next_retry_at(session)
                for webhook_id in ids - set(self.busy):
                    self.busy[webhook_id] = self.container.spawn_managed_thread(
                        lambda webhook_id=webhook_id: self.run_courier(webhook_id),
                        identifier=f"webhooks.courier.{webhook_id}")
            except Exception:
                ids = retry_at = None
                log.warning("webhook supervisor failed; retrying", exc_info=True)
            delay = self.next_delay(delay, ids is None or ids or self.busy, retry_at, now)
            with eventlet.Timeout(delay, False):
                self.wakeup.wait()
            self.wakeup = Event()

    @staticmethod
    def next_delay(last, busy, retry_at, now):
        """Seconds until the next poll: the short one while there is work, else doubling up to the idle bound, but
        not past the earliest retry."""
        poll = setting("WEBHOOK_POLL_SECONDS")
        if busy:
            return poll
        delay = min(last * 2, max(setting("WEBHOOK_IDLE_POLL_MAX_SECONDS"), poll))
        if retry_at is not None:
            delay = min(delay, max(poll, (retry_at - now).total_seconds()))
        return delay

    def run_courier(self, webhook_id):
        try:
            while self.running and self.leased(webhook_id) and self.deliver_due(webhook_id):
                pass
        except Exception:
            log.warning("courier of webhook %s failed; the supervisor starts another", webhook_id, exc_info=True)
        finally:
            self.busy.pop(webhook_id, None)
            self.release(webhook_id)

    def leased(self, webhook_id):
        """Held for longer than one batch of attempts can take; a replica that dies frees it when it runs out."""
        with self.database.Session(close_on_exit=True) as session:
            return take_lease(session, webhook_id, self.identity, utcnow(), self.lease_seconds())

    def release(self, webhook_id):
        try:
            with self.database.Session(close_on_exit=True) as session:
                end_lease(session, webhook_id, self.identity)
        except Exception:  # it runs out by itself
            log.warning("lease of webhook %s not released", webhook_id, exc_info=True)

    @staticmethod
    def lease_seconds():
        return BATCH * setting("WEBHOOK_TIMEOUT_SECONDS") + 60

    def deliver_due(self, webhook_id):
        """Send each aggregate's next due delivery once; whether there was any (then there may be more)."""
        with self.database.Session(close_on_exit=True, expire_on_commit=False) as session:
            webhook = session.get(Webhook, webhook_id)
            if webhook is None or not webhook.active or webhook.deleted_at is not None:
                return False
            heads = due_heads(session, webhook_id, utcnow())[:BATCH]
            session.expunge_all()
        for delivery in heads:
            if not self.running:
                break
            self.attempt(webhook, delivery)
        return bool(heads)

    def attempt(self, webhook, delivery):
        headers = {"X-POS-Event-Id": delivery.event_id, "X-POS-Event-Type": delivery.event_type,
                   "X-POS-Delivery-Id": str(delivery.id)}
        outcome = post(webhook.url, webhook.secret, delivery.body.encode(), headers,
                       setting("WEBHOOK_TIMEOUT_SECONDS"), setting("WEBHOOK_MAX_RESPONSE_BYTES"))
        now = utcnow()
        with self.database.Session(close_on_exit=True) as session:
            row = session.get(Delivery, delivery.id)
            hook = session.get(Webhook, webhook.id)
            if row is None or hook is None:
                return
            session.add(row.record(outcome, now, retry_delay(row.attempts + 1), setting("WEBHOOK_GIVE_UP_SECONDS")))
            if outcome.succeeded:
                hook.succeeded()
            else:
                hook.failed(now)
        if not outcome.succeeded:
            log.info("webhook %s: delivery %s (%s) attempt failed: %s", webhook.id, delivery.id, delivery.event_type,
                     outcome.error)
