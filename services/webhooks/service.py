"""Webhooks: external systems subscribe a URL to domain events and get each one POSTed, signed (API.md "Webhooks").

Events in: every event of every service that publishes domain events (``subscription.every_domain_event``); one
that no webhook wants (``subscription.Subscriptions``, in memory) is acked at once; else for each live, active
webhook that wants its type, a delivery row holding the body (the Kafka value,
``common.events.encode_envelope``) is written in the handler's one transaction, then ``Couriers`` send it
(courier.py: one greenlet per webhook, in order per aggregate, retried with growing jittered delays).
Event out: ``webhook.deactivated`` (``schemas.webhooks.WebhookDeactivatedSchema``) when a webhook has failed for
``WEBHOOK_GIVE_UP_SECONDS``; notifications emails the admin.
RPC: ``create_webhook(data)`` (the answer alone has the secret), ``list_webhooks()``, ``get_webhook(webhook_id)``,
``update_webhook(webhook_id, data)``, ``delete_webhook(webhook_id)``, ``list_deliveries(webhook_id, query)``,
``redeliver(webhook_id, delivery_id)``.
"""

import logging
import secrets

from sqlalchemy import func, select

from common.correlation import CorrelationId
from common.db import Database
from common.errors import NotFound, ValidationFailed
from common.events import broadcast_handler, can_record, encode_envelope, utcnow
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import rpc
from common.timers import config_timer
from common.validation import load, load_id
from schemas.common import page_of
from schemas.events.generate import EVENTS
from schemas.webhooks import (
    DeliveryQuerySchema,
    DeliverySchema,
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookDeactivatedSchema,
    WebhookSchema,
    WebhookUpdateSchema,
)
from services.webhooks.courier import Couriers, Refused, resolve, setting
from services.webhooks.models import (
    FAILED,
    PENDING,
    Base,
    Delivery,
    OutboxMessage,
    ProcessedEvent,
    Webhook,
    live_webhooks,
)
from services.webhooks.subscription import (
    SIGNAL_SOURCE,
    SIGNAL_TYPE,
    Subscriptions,
    SubscriptionSignal,
    every_domain_event,
)

log = logging.getLogger(__name__)

SOURCES = sorted({event.source for event in EVENTS.values()})
SECRET_PREFIX = "whsec_"


class WebhooksService(Operational):
    name = "webhooks"

    db = Database(Base, handled_events=ProcessedEvent, session_options={"expire_on_commit": False})
    outbox = Outbox(OutboxMessage)
    couriers = Couriers()
    subscription_signal = SubscriptionSignal()
    subscriptions = Subscriptions()
    correlation = CorrelationId()
    metrics = Metrics()

    @every_domain_event(SOURCES, wanted="subscriptions")  # what no webhook wants is acked before a worker starts
    def record_deliveries(self, envelope):
        body = deliverable_body(envelope)
        if body is None:
            return
        with self.db.get_session() as session:
            hooks = [hook for hook in live_webhooks(session) if hook.wants(envelope["event_type"])]
            session.add_all(Delivery(webhook_id=hook.id, event_id=envelope["event_id"],
                                     event_type=envelope["event_type"], aggregate_id=str(envelope["aggregate_id"]),
                                     body=body) for hook in hooks)
        if hooks:
            self.couriers.kick()

    @broadcast_handler(SIGNAL_SOURCE, SIGNAL_TYPE)
    def subscriptions_changed(self, _payload):
        """Another replica changed a webhook: the next event reads the subscriptions again."""
        self.subscriptions.forget()

    @config_timer("WEBHOOK_SWEEP_SECONDS", default=60)
    def retire_failing_webhooks(self):
        now, limit = utcnow(), setting("WEBHOOK_GIVE_UP_SECONDS")
        retired = False
        with self.db.get_session() as session:
            for hook in live_webhooks(session):
                if hook.active and hook.failing_since and hook.failing_for(now) >= limit:
                    self._retire(session, hook, now)
                    retired = True
        if retired:
            self.subscriptions.changed()

    @rpc
    def create_webhook(self, data):
        data = load(WebhookCreateSchema(), data)
        check_url(data["url"])
        with self.db.get_session() as session:
            hook = Webhook(url=data["url"], description=data["description"],
                           secret=SECRET_PREFIX + secrets.token_urlsafe(32))
            hook.events = data["events"]
            session.add(hook)
            session.flush()
            answer = WebhookCreatedSchema().dump(hook)
        self.subscriptions.changed()
        return answer

    @rpc
    def list_webhooks(self):
        with self.db.get_session() as session:
            return {"items": WebhookSchema(many=True).dump(live_webhooks(session))}

    @rpc
    def get_webhook(self, webhook_id):
        with self.db.get_session() as session:
            return WebhookSchema().dump(self._webhook(session, webhook_id))

    @rpc
    def update_webhook(self, webhook_id, data):
        data = load(WebhookUpdateSchema(), data)
        if "url" in data:
            check_url(data["url"])
        now = utcnow()
        with self.db.get_session() as session:
            hook = self._webhook(session, webhook_id)
            for name in ("url", "description", "events"):
                if name in data:
                    setattr(hook, name, data[name])
            if data.get("active") is True and not hook.active:
                hook.reactivate(now)
            elif data.get("active") is False and hook.active:
                hook.deactivate(now)
            hook.updated_at = now
            answer = WebhookSchema().dump(hook)
        self.subscriptions.changed()
        return answer

    @rpc
    def delete_webhook(self, webhook_id):
        with self.db.get_session() as session:
            hook = self._webhook(session, webhook_id)
            hook.deleted_at = hook.updated_at = utcnow()
            hook.active = False
        self.subscriptions.changed()

    @rpc
    def list_deliveries(self, webhook_id, query=None):
        query = load(DeliveryQuerySchema(), query)
        with self.db.get_session() as session:
            hook = self._webhook(session, webhook_id)
            where = [Delivery.webhook_id == hook.id] + ([Delivery.status == query["status"]]
                                                        if query.get("status") else [])
            total = session.scalar(select(func.count()).select_from(Delivery).where(*where))
            rows = session.scalars(select(Delivery).where(*where).order_by(Delivery.id.desc())
                                   .offset((query["page"] - 1) * query["page_size"]).limit(query["page_size"])).all()
            return page_of(DeliverySchema(many=True).dump(rows), query["page"], query["page_size"], total)

    @rpc
    def redeliver(self, webhook_id, delivery_id):
        """The same event (id and body) once more, behind the aggregate's pending deliveries; a new delivery row."""
        with self.db.get_session() as session:
            hook = self._webhook(session, webhook_id)
            original = session.get(Delivery, load_id(delivery_id, "delivery_id"))
            if original is None or original.webhook_id != hook.id:
                raise NotFound(f"Webhook {hook.id} has no delivery {delivery_id}.", code="delivery_not_found")
            again = Delivery(webhook_id=hook.id, event_id=original.event_id, event_type=original.event_type,
                             aggregate_id=original.aggregate_id, body=original.body)
            session.add(again)
            session.flush()
            answer = DeliverySchema().dump(again)
        self.couriers.kick()
        return answer

    def _webhook(self, session, webhook_id):
        hook = session.get(Webhook, load_id(webhook_id, "webhook_id"))
        if hook is None or hook.deleted_at is not None:
            raise NotFound(f"Webhook {webhook_id} not found.", code="webhook_not_found")
        return hook

    def _retire(self, session, hook, now):
        hook.deactivate(now)
        for delivery in session.scalars(select(Delivery).where(Delivery.webhook_id == hook.id,
                                                                Delivery.status == PENDING)):
            delivery.status, delivery.next_attempt_at = FAILED, None
        last_error = session.scalar(select(Delivery.last_error).where(Delivery.webhook_id == hook.id,
                                                                      Delivery.last_error.is_not(None))
                                    .order_by(Delivery.id.desc()).limit(1))
        log.warning("webhook %s deactivated: failing since %s", hook.id, hook.failing_since)
        self.outbox.add(session, "webhook.deactivated", hook.id, WebhookDeactivatedSchema().dump(
            {"id": hook.id, "url": hook.url, "failing_since": hook.failing_since, "deactivated_at": now,
             "last_error": last_error}))


def check_url(url):
    """A URL is checked when it is given too (and on every attempt), so a bad one is refused at once."""
    try:
        resolve(url)
    except Refused as exc:
        raise ValidationFailed("The webhook URL is not allowed.", details={"url": [str(exc).capitalize() + "."]},
                               code="validation_error") from None


def deliverable_body(envelope):
    """The body every webhook gets for this event, or None for an event that cannot be delivered (logged, acked)."""
    if not isinstance(envelope, dict) or not can_record(envelope.get("event_id")) \
            or not isinstance(envelope.get("event_type"), str) or not 0 < len(envelope["event_type"]) <= 64 \
            or not 0 < len(str(envelope.get("aggregate_id") or "")) <= 64:
        log.warning("webhooks: an event without a usable event_id, event_type or aggregate_id was dropped")
        return None
    try:
        return encode_envelope(envelope).decode()
    except (TypeError, ValueError):
        log.warning("webhooks: event %s cannot be encoded as JSON; dropped", envelope["event_id"])
        return None
