"""Shapes of webhooks (API.md "Webhooks (admin)"): a subscription of an external URL to domain events, and the
record of every delivery attempt.

Imports only marshmallow, ``schemas.common`` and the event catalogue (``schemas.events.generate.EVENTS``).
"""

from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf

from schemas.common import PaginationSchema, Text, Timestamp, paginated
from schemas.events.generate import EVENTS

ANY_EVENT = "*"
EVENT_TYPES = tuple(EVENTS)
MAX_URL_LENGTH = 2048
DELIVERY_STATUSES = ("PENDING", "DELIVERED", "FAILED")


def _url(value):
    """The shape of a webhook URL; whether its host is allowed is decided by the service, on every attempt."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError("Not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Must be an http(s) URL with a host.")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValidationError("Must not carry credentials or a fragment.")
    if port == 0 or any(ord(char) <= 32 or ord(char) > 126 for char in value):
        raise ValidationError("Not a valid URL.")


def _events(values):
    if ANY_EVENT in values and len(values) > 1:
        raise ValidationError(f"{ANY_EVENT!r} stands alone.")


class WebhookCreateSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = Text(required=True, validate=[Length(min=1, max=MAX_URL_LENGTH), _url],
               metadata={"description": "https and public in uat/prod; dev also allows http://127.0.0.1"})
    events = fields.List(fields.String(validate=OneOf((ANY_EVENT, *EVENT_TYPES))), required=True,
                         validate=[Length(min=1, max=len(EVENT_TYPES)), _events],
                         metadata={"description": "event types (API.md \"Kafka topics\"), or [\"*\"] for all"})
    description = Text(load_default=None, allow_none=True, validate=Length(max=255))


class WebhookUpdateSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = Text(validate=[Length(min=1, max=MAX_URL_LENGTH), _url])
    events = fields.List(fields.String(validate=OneOf((ANY_EVENT, *EVENT_TYPES))),
                         validate=[Length(min=1, max=len(EVENT_TYPES)), _events])
    description = Text(allow_none=True, validate=Length(max=255))
    active = fields.Boolean(metadata={"description": "true reactivates a webhook (its failures are forgotten)"})

    @validates_schema
    def something_to_change(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of url, events, description, active.", "_schema")


class WebhookSchema(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    description = fields.String(allow_none=True)
    active = fields.Boolean(required=True)
    failing_since = Timestamp(allow_none=True, metadata={"description": "first failure since the last success"})
    deactivated_at = Timestamp(allow_none=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(required=True, metadata={"description": "the signing secret; shown only here"})


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookSchema), required=True)


class AttemptSchema(Schema):
    attempt = fields.Integer(required=True)
    status_code = fields.Integer(allow_none=True, metadata={"description": "the receiver's HTTP status, if any"})
    latency_ms = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    attempted_at = Timestamp(required=True)


class DeliverySchema(Schema):
    id = fields.Integer(required=True)
    webhook_id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    aggregate_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(DELIVERY_STATUSES)})
    attempts = fields.Integer(required=True)
    next_attempt_at = Timestamp(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = Timestamp(required=True)
    delivered_at = Timestamp(allow_none=True)
    history = fields.List(fields.Nested(AttemptSchema), required=True)


class DeliveryQuerySchema(PaginationSchema):
    status = fields.String(validate=OneOf(DELIVERY_STATUSES))


DeliveryPageSchema = paginated(DeliverySchema, "DeliveryPageSchema")


class WebhookDeactivatedSchema(Schema):
    """``data`` of ``webhook.deactivated`` (webhooks -> notifications, the admin's email)."""

    id = fields.Integer(required=True)
    url = fields.String(required=True)
    failing_since = Timestamp(allow_none=True)
    deactivated_at = Timestamp(required=True)
    last_error = fields.String(allow_none=True)
