"""Shapes of the notifications service: the notifications it recorded and the invoice links it hands out.

Imports only marshmallow and ``schemas.common``.
"""

from marshmallow import Schema, fields
from marshmallow.validate import Range

from schemas.common import Timestamp


class NotificationSchema(Schema):
    id = fields.Integer()
    event_id = fields.String()
    kind = fields.String(metadata={"description": "order_confirmation, payment_failed, order_cancelled, "
                                                  "order_shipped, order_delivered, stock_low or "
                                                  "webhook_deactivated"})
    channel = fields.String(metadata={"description": "email or sms"})
    recipient = fields.String()
    subject = fields.String()
    order_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": "PENDING (retried later), SENT or FAILED"})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = Timestamp()
    sent_at = Timestamp(allow_none=True)


class NotificationSentSchema(Schema):
    """``data`` of the ``notification.sent`` event."""

    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    channel = fields.String(required=True)
    recipient = fields.String()
    subject = fields.String(allow_none=True)
    order_id = fields.Integer(allow_none=True)
    source_event_id = fields.String(attribute="event_id", allow_none=True)
    attempts = fields.Integer(validate=Range(min=0))
    sent_at = Timestamp(allow_none=True)


class InvoiceLinkSchema(Schema):
    """``GET /orders/{id}/invoice``: a link that downloads the PDF until ``expires_at``."""

    url = fields.String(required=True, metadata={"description": "Presigned S3 URL or a signed gateway URL"})
    expires_at = fields.String(required=True, metadata={"description": "RFC 3339 UTC"})
    number = fields.String(metadata={"description": "Invoice number"})
    order_id = fields.Integer()
