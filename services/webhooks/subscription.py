"""``every_domain_event``: one handler for every event of the given source services, in the order they arrive.

A durable queue bound with ``#`` to each ``<service>.events`` exchange, consumed one message at a time (prefetch
1, acked when the handler ends; one active consumer among the replicas), so the handler records one aggregate's
events in the order its service published them (the outbox publishes in commit order). De-duplication and
requeueing are ``common.events.DomainEventHandler``'s.
"""

from kombu import Queue, binding
from nameko.messaging import Consumer
from nameko.standalone.events import get_event_exchange

from common.events import DomainEventHandler


class EveryDomainEvent(DomainEventHandler):
    def __init__(self, source_services, **kwargs):
        self.source_services = tuple(source_services)
        kwargs.setdefault("prefetch_count", 1)
        super().__init__("*", "#", **kwargs)

    def setup(self):
        bindings = [binding(get_event_exchange(source), routing_key="#") for source in self.source_services]
        # one active consumer among the replicas: a second one would record the same aggregate's events in parallel
        self.queue = Queue(f"evt-all--{self.container.service_name}.{self.method_name}", bindings=bindings,
                           durable=True, queue_arguments={"x-single-active-consumer": True})
        Consumer.setup(self)  # not EventHandler's: that one binds a single exchange and event type


every_domain_event = EveryDomainEvent.decorator
