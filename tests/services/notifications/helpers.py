"""Events shaped like the orders and inventory services' own, and readers for what the notifications service sent."""

import io
import socket

from nameko.standalone.events import event_dispatcher
from pypdf import PdfReader

from common.events import make_envelope, utcnow
from schemas.common import rfc3339


def an_order(order_id, customer_id, status="PAID", items=None):
    items = items or [
        {"product_id": 11, "sku": "TEA-001", "name": "Green tea", "unit_price": "4.50", "quantity": 2,
         "line_total": "9.00"},
        {"product_id": 12, "sku": "MUG-002", "name": "Blue mug", "unit_price": "12.00", "quantity": 1,
         "line_total": "12.00"},
    ]
    now = rfc3339(utcnow())
    history = [{"status": "PENDING_PAYMENT", "at": now}]
    if status != "PENDING_PAYMENT":
        history.append({"status": status, "at": now})
    return {
        "id": order_id, "customer_id": customer_id, "status": status, "items": items,
        "total": f"{sum(float(i['line_total']) for i in items):.2f}", "currency": "USD",
        "shipping_address": {"name": "Ann Lee", "line1": "2 High Street", "city": "Leeds",
                             "postal_code": "LS1 1AA", "country": "GB"},
        "payment": {"status": "CAPTURED" if status == "PAID" else "PENDING", "reference": "pay_1"},
        "invoice_url": None, "history": history, "created_at": now, "updated_at": now,
    }


def publish(source, event_type, aggregate_id, data):
    """Dispatch an envelope exactly as the outbox of ``source`` would; returns it."""
    envelope = make_envelope(event_type, aggregate_id, data, source=source, correlation_id="test-correlation")
    event_dispatcher()(source, event_type, envelope)
    return envelope


def body_text(message, subtype="plain"):
    return message.get_body(preferencelist=(subtype,)).get_content()


def pdf_attachments(message):
    return [part for part in message.iter_attachments() if part.get_content_type() == "application/pdf"]


def pdf_text(content):
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def smtp_config(server):
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": server.port, "SMTP_SECURITY": "none", "SMTP_TIMEOUT": 5}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
