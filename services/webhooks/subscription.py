"""``every_domain_event``: one handler for every event of the given source services, in the order they arrive;
``Subscriptions``: which of those events any webhook wants, without a database read per event.

A durable queue bound with ``#`` to each ``<service>.events`` exchange, consumed one message at a time (prefetch
1, acked when the handler ends; one active consumer among the replicas), so the handler records one aggregate's
events in the order its service published them (the outbox publishes in commit order). De-duplication and
requeueing are ``common.events.DomainEventHandler``'s.
"""

import logging
import time

from kombu import Queue, binding
from nameko import config
from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer, Publisher
from nameko.standalone.events import get_event_exchange

from common.dependencies import declared
from common.events import DomainEventHandler
from services.webhooks.models import live_webhooks

log = logging.getLogger(__name__)

SIGNAL_SOURCE = "webhooks.subscriptions"  # not a service: the exchange of the "a webhook changed" broadcast
SIGNAL_TYPE = "changed"


class EveryDomainEvent(DomainEventHandler):
    """``wanted``: the name of the service's ``Subscriptions``; an event it does not want is acked here, without a
    worker (no dependencies set up, no transaction, no processed-event record: a repeat is just as harmless)."""

    def __init__(self, source_services, wanted=None, **kwargs):
        self.source_services = tuple(source_services)
        self.wanted_name = wanted
        kwargs.setdefault("prefetch_count", 1)
        super().__init__("*", "#", **kwargs)

    def setup(self):
        bindings = [binding(get_event_exchange(source), routing_key="#") for source in self.source_services]
        # one active consumer among the replicas: a second one would record the same aggregate's events in parallel
        self.queue = Queue(f"evt-all--{self.container.service_name}.{self.method_name}", bindings=bindings,
                           durable=True, queue_arguments={"x-single-active-consumer": True})
        self.wanted = declared(self.container, self.wanted_name, "every_domain_event") if self.wanted_name else None
        Consumer.setup(self)  # not EventHandler's: that one binds a single exchange and event type

    def handle_message(self, body, message):
        event_type = body.get("event_type") if isinstance(body, dict) else None
        if self.wanted is not None and isinstance(event_type, str):
            try:
                wanted = self.wanted.wants(event_type)
            except Exception:  # the database blinked: the worker reads the webhooks itself (and requeues)
                log.warning("webhooks: subscriptions not read; the event goes to the handler", exc_info=True)
                wanted = True
            if not wanted:
                self.consumer.ack_message(message)
                return
        super().handle_message(body, message)


every_domain_event = EveryDomainEvent.decorator


class Subscriptions(DependencyProvider):
    """Which event types any live, active webhook wants, kept in memory: an event nobody subscribed to (most of
    them, and every one while there is no webhook) is acked without touching the database.

    The snapshot is dropped by ``changed()`` after every change of a webhook in this process, and in the other
    replicas by the ``SIGNAL_SOURCE`` broadcast that ``changed()`` also sends (``WebhooksService.
    subscriptions_changed``); ``WEBHOOK_SUBSCRIPTIONS_REFRESH_SECONDS`` bounds how stale it gets if a broadcast
    is lost (a broker reconnect). A snapshot that says "wanted" is only a hint: the handler reads the webhooks.
    """

    def __init__(self, database="db", signal="subscription_signal"):
        self.database_name, self.signal_name = database, signal

    def setup(self):
        self.database = declared(self.container, self.database_name, "Subscriptions")
        self.signal = declared(self.container, self.signal_name, "Subscriptions")
        self.wanted, self.loaded_at, self.changed_at = None, None, time.monotonic()

    def get_dependency(self, worker_ctx):
        return SubscriptionsView(self, worker_ctx)

    def wants(self, event_type):
        now = time.monotonic()
        if self.loaded_at is None or self.loaded_at <= self.changed_at \
                or now - self.loaded_at >= float(config.get("WEBHOOK_SUBSCRIPTIONS_REFRESH_SECONDS") or 5):
            with self.database.Session(close_on_exit=True) as session:
                wanted = set()
                for hook in live_webhooks(session):
                    if hook.active:
                        wanted.update(hook.events)
            # loaded after the change it follows, so a change meanwhile (changed_at > now) reloads again
            self.wanted, self.loaded_at = wanted, now
        return "*" in self.wanted or event_type in self.wanted

    def forget(self):
        self.changed_at = time.monotonic()


class SubscriptionsView:
    def __init__(self, provider, worker_ctx):
        self.provider, self.worker_ctx = provider, worker_ctx

    def wants(self, event_type):
        return self.provider.wants(event_type)

    def forget(self):
        """A broadcast from another replica: drop this one's snapshot."""
        self.provider.forget()

    def changed(self):
        """After a change of a webhook has committed: drop the snapshot here and tell the other replicas."""
        self.provider.forget()
        try:
            self.provider.signal.get_dependency(self.worker_ctx)(SIGNAL_TYPE, {})
        except Exception:  # the change is committed; the others see it within the refresh bound
            log.warning("webhooks: the subscription change was not broadcast to the other replicas", exc_info=True)


class SubscriptionSignal(EventDispatcher):
    """Nameko's dispatcher on an exchange of its own (``SIGNAL_SOURCE.events``): not ``webhooks.events``, which the
    Kafka bridge and ``every_domain_event`` consume as domain events."""

    def setup(self):
        self.exchange = get_event_exchange(SIGNAL_SOURCE)
        self.declare.append(self.exchange)
        Publisher.setup(self)
