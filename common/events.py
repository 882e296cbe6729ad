"""Domain event envelopes, and event handlers that are safe under at-least-once delivery.

Every domain event, on AMQP and on Kafka, is the envelope of API.md::

    {event_id, event_type, event_version, occurred_at, source, correlation_id, aggregate_id, data}

``aggregate_id`` (a string) is the Kafka key, so one aggregate's events keep their order. On AMQP every event also
carries ``event_headers(envelope)``: its id, its type and the ``aggregate_id`` header the Kafka bridge shards on, so
one aggregate's events always reach the same shard. The outbox publishes with them, and so does ``EventDispatcher``
(for the few facts that need no outbox: the payments service's).
"""

import json
import uuid
from datetime import UTC, datetime

import eventlet
from nameko.events import BROADCAST, EventHandler
from nameko.events import EventDispatcher as NamekoEventDispatcher
from nameko.messaging import encode_to_headers
from sqlalchemy import Column, DateTime, String, delete, insert

from common.amqp import ReadAheadConsumer
from common.errors import DependencyUnavailable, DomainError

REQUEUE_DELAY = 0.5
EVENT_ID_LENGTH = 36
HANDLER_LENGTH = 100
AGGREGATE_HEADER = "aggregate_id"


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


def rfc3339_millis(moment):
    """Event times keep milliseconds: relay lag is measured from them."""
    return moment.isoformat(timespec="milliseconds") + "Z"


# Fields that services need internally but downstream consumers (Kafka, webhooks) must never see.
PRIVATE_DATA_FIELDS = ("payment_token",)
# Compact, as every Kafka record so far: a repeat must stay byte-for-byte the same (docs/kafka.md). One encoder for all.
ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def public_data(data):
    if not isinstance(data, dict) or not any(name in data for name in PRIVATE_DATA_FIELDS):
        return data
    return {name: value for name, value in data.items() if name not in PRIVATE_DATA_FIELDS}


def public_envelope(envelope):
    """The envelope as systems outside see it (the Kafka value, a webhook's body).

    An event without a correlation id (a service without ``CorrelationId``) gets its own event id, so the
    contract's non-empty ``correlation_id`` holds and a repeat of the event stays byte-for-byte the same.
    """
    return {**envelope, "aggregate_id": str(envelope["aggregate_id"]),
            "correlation_id": envelope.get("correlation_id") or str(envelope["event_id"]),
            "data": public_data(envelope.get("data"))}


def encode_envelope(envelope):
    """``public_envelope`` as compact JSON bytes; ``TypeError``/``ValueError`` if it cannot be encoded."""
    return ENCODER.encode(public_envelope(envelope)).encode()


def make_envelope(event_type, aggregate_id, data, source, correlation_id=None, event_version=1, event_id=None):
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": event_version,
        "occurred_at": rfc3339_millis(utcnow()),
        "source": source,
        "correlation_id": correlation_id,
        "aggregate_id": str(aggregate_id),
        "data": data,
    }


def event_headers(envelope):
    """The AMQP headers of a domain event; ``AGGREGATE_HEADER`` is the Kafka bridge's shard key."""
    return {"event_id": envelope["event_id"], "event_type": envelope["event_type"],
            AGGREGATE_HEADER: str(envelope["aggregate_id"])}


class EventDispatcher(NamekoEventDispatcher):
    """Nameko's ``dispatch(event_type, envelope)``, publishing the envelope with its ``event_headers``."""

    def get_dependency(self, worker_ctx):
        def dispatch(event_type, envelope):
            headers = {**encode_to_headers(worker_ctx.context_data), **event_headers(envelope)}
            self.publisher.publish(envelope, exchange=self.exchange, routing_key=event_type, extra_headers=headers)

        return dispatch


class ProcessedEventMixin:
    """Remembers which (event, handler) pairs were applied; a service maps it onto its own Base."""

    __tablename__ = "processed_events"
    event_id = Column(String(EVENT_ID_LENGTH), primary_key=True)
    handler = Column(String(HANDLER_LENGTH), primary_key=True)
    processed_at = Column(DateTime, nullable=False, default=utcnow)


class AlreadyHandled(DomainError):
    """This handler applied this event before: its worker stops and the message is acked."""

    code = "already_handled"


def can_record(event_id):
    """Whether ``event_id`` fits the processed-events table; an event with no such id is applied as it comes."""
    return isinstance(event_id, str) and 0 < len(event_id) <= EVENT_ID_LENGTH


def record_delivery(connection, model, event_id, handler):
    """Record ``(event_id, handler)`` as processed on ``connection``'s transaction; False if it already was."""
    recorded = connection.execute(insert(model).values(event_id=event_id, handler=handler[:HANDLER_LENGTH],
                                                       processed_at=utcnow())
                                  .prefix_with("IGNORE", dialect="mysql").prefix_with("OR IGNORE", dialect="sqlite"))
    return recorded.rowcount == 1


def prune_processed(session, model, older_than):
    """Forget the processed-event records older than ``older_than`` (redeliveries come within minutes, not days);
    how many."""
    return session.execute(delete(model).where(model.processed_at < older_than)).rowcount


class DomainEventHandler(EventHandler):
    """``event_handler`` that applies each event once, and requeues on infrastructure errors but not on domain errors.

    Once: a service whose ``Database`` names a processed-events model (``Database(Base, handled_events=...)``) gets
    every event recorded per handler in the first transaction the handler's worker begins, so the record commits or
    rolls back with that transaction's changes; a redelivery meets the record there and the worker stops with
    ``AlreadyHandled``. A handler therefore makes the changes that must happen once in its first transaction.

    ``idempotent=True``: the handler's change is safe to repeat by itself (a projection applied only from a newer
    version), so its events are not recorded: a redelivery just repeats it.

    Nameko's default acks a message whose handler raised, losing the event when the database blinks;
    requeueing everything would spin forever on an event the domain rejects. Domain errors are final,
    except ``DependencyUnavailable`` (a service it needs did not answer in time): that one is retried.
    """

    consumer_cls = ReadAheadConsumer

    def __init__(self, source_service, event_type, idempotent=False, **kwargs):
        self.idempotent = idempotent
        kwargs.setdefault("requeue_on_error", True)
        kwargs.setdefault("expected_exceptions", AlreadyHandled)
        super().__init__(source_service, event_type, **kwargs)

    def delivery(self, worker_ctx):
        """``(event_id, handler)`` of the event this worker applies: the key of its processed-event record."""
        envelope = worker_ctx.args[0] if worker_ctx.args and not self.idempotent else None
        event_id = envelope.get("event_id") if isinstance(envelope, dict) else None
        return event_id, self.method_name

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is not None and isinstance(exc_info[1], DomainError) \
                and not isinstance(exc_info[1], DependencyUnavailable):  # a dependency that is down is not final
            self.consumer.ack_message(message)
            return result, exc_info
        if exc_info is not None:
            eventlet.sleep(REQUEUE_DELAY)  # an outage should not turn into a hot redelivery loop
        return super().handle_result(message, worker_ctx, result, exc_info)


domain_event_handler = DomainEventHandler.decorator


class BroadcastHandler(EventHandler):
    """``broadcast_handler(source, event_type)``: every replica gets every event, on a queue of its own that goes
    with it. For what each replica keeps in memory (a text index, a snapshot); read through ``common.amqp``'s
    consumer like every other entrypoint of ours."""

    consumer_cls = ReadAheadConsumer

    def __init__(self, source_service, event_type, **kwargs):
        kwargs.setdefault("handler_type", BROADCAST)
        kwargs.setdefault("reliable_delivery", False)
        super().__init__(source_service, event_type, **kwargs)


broadcast_handler = BroadcastHandler.decorator
