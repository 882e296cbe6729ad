"""Domain event envelopes, and event handlers that are safe under at-least-once delivery.

Every domain event, on AMQP and on Kafka, is the envelope of API.md::

    {event_id, event_type, event_version, occurred_at, source, correlation_id, aggregate_id, data}

``aggregate_id`` (a string) is the Kafka key, so one aggregate's events keep their order.
"""

import uuid
from datetime import UTC, datetime

import eventlet
from nameko.events import EventHandler
from sqlalchemy import Column, DateTime, String, insert
from sqlalchemy.exc import IntegrityError

from common.amqp import ReadAheadConsumer
from common.errors import DependencyUnavailable, DomainError

REQUEUE_DELAY = 0.5
EVENT_ID_LENGTH = 36
HANDLER_LENGTH = 100


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


def rfc3339_millis(moment):
    """Event times keep milliseconds: relay lag is measured from them."""
    return moment.isoformat(timespec="milliseconds") + "Z"


def make_envelope(event_type, aggregate_id, data, source, correlation_id=None, event_version=1):
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": event_version,
        "occurred_at": rfc3339_millis(utcnow()),
        "source": source,
        "correlation_id": correlation_id,
        "aggregate_id": str(aggregate_id),
        "data": data,
    }


class ProcessedEventMixin:
    """Remembers which (event, handler) pairs were applied; a service maps it onto its own Base."""

    __tablename__ = "processed_events"
    event_id = Column(String(EVENT_ID_LENGTH), primary_key=True)
    handler = Column(String(HANDLER_LENGTH), primary_key=True)
    processed_at = Column(DateTime, nullable=False, default=utcnow)


def first_delivery(session, model, envelope, handler):
    """Record the event as processed in ``session``; False if it already was (a redelivery).

    Call it inside the same transaction as the handler's own changes, so both commit or neither does.
    """
    event_id = envelope.get("event_id")
    if not event_id:
        return True
    if isinstance(event_id, str) and len(event_id) <= EVENT_ID_LENGTH and len(handler) <= HANDLER_LENGTH:
        # One round trip on the hot path; MySQL's IGNORE would also swallow an over-long value, hence the check.
        recorded = session.execute(insert(model).values(event_id=event_id, handler=handler, processed_at=utcnow())
                                   .prefix_with("IGNORE", dialect="mysql").prefix_with("OR IGNORE", dialect="sqlite"))
        return recorded.rowcount == 1
    if session.get(model, (event_id, handler)) is not None:
        return False
    session.add(model(event_id=event_id, handler=handler))
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        return False
    return True


class DomainEventHandler(EventHandler):
    """``event_handler`` that requeues on infrastructure errors but not on domain errors.

    Nameko's default acks a message whose handler raised, losing the event when the database blinks;
    requeueing everything would spin forever on an event the domain rejects. Domain errors are final,
    except ``DependencyUnavailable`` (a service it needs did not answer in time): that one is retried.
    """

    consumer_cls = ReadAheadConsumer

    def __init__(self, source_service, event_type, **kwargs):
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(source_service, event_type, **kwargs)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is not None and isinstance(exc_info[1], DomainError) \
                and not isinstance(exc_info[1], DependencyUnavailable):  # a dependency that is down is not final
            self.consumer.ack_message(message)
            return result, exc_info
        if exc_info is not None:
            eventlet.sleep(REQUEUE_DELAY)  # an outage should not turn into a hot redelivery loop
        return super().handle_result(message, worker_ctx, result, exc_info)


domain_event_handler = DomainEventHandler.decorator
