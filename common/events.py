"""Domain event envelopes, and event handlers that are safe under at-least-once delivery.

Every domain event, on AMQP and on Kafka, is the envelope of API.md::

    {event_id, event_type, event_version, occurred_at, source, correlation_id, aggregate_id, data}

``aggregate_id`` (a string) is the Kafka key, so one aggregate's events keep their order.
"""

import uuid
from datetime import UTC, datetime

import eventlet
from nameko.events import EventHandler
from sqlalchemy import Column, DateTime, String
from sqlalchemy.exc import IntegrityError

from common.errors import DomainError

REQUEUE_DELAY = 0.5


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


def rfc3339(moment):
    """Naive datetimes in this system are UTC."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


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
    event_id = Column(String(36), primary_key=True)
    handler = Column(String(100), primary_key=True)
    processed_at = Column(DateTime, nullable=False, default=utcnow)


def first_delivery(session, model, envelope, handler):
    """Record the event as processed in ``session``; False if it already was (a redelivery).

    Call it inside the same transaction as the handler's own changes, so both commit or neither does.
    """
    event_id = envelope.get("event_id")
    if not event_id:
        return True
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
    requeueing everything would spin forever on an event the domain rejects. Domain errors are final.
    """

    def __init__(self, source_service, event_type, **kwargs):
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(source_service, event_type, **kwargs)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is not None and isinstance(exc_info[1], DomainError):
            self.consumer.ack_message(message)
            return result, exc_info
        if exc_info is not None:
            eventlet.sleep(REQUEUE_DELAY)  # an outage should not turn into a hot redelivery loop
        return super().handle_result(message, worker_ctx, result, exc_info)


domain_event_handler = DomainEventHandler.decorator
