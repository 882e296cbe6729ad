"""What each notification says: Jinja2 templates per kind, plain text and HTML for email, short text for SMS.

``templates/email/<kind>.txt`` sets the subject (``{% set subject = ... %}``) and is the plain-text body;
``<kind>.html`` is the HTML alternative; ``templates/sms/<kind>.txt``, where it exists, is the SMS.
"""

from pathlib import Path

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, TemplateNotFound, select_autoescape

from schemas.orders import OrderStatus, PaymentStatus
from services.notifications.invoices import shop_details

TEMPLATES = Path(__file__).parent / "templates"
ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
    undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)

# order.status_changed -> the message for the new status; other statuses have their own events
STATUS_KINDS = {OrderStatus.SHIPPED: "order_shipped", OrderStatus.DELIVERED: "order_delivered"}
CHARGED = (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.REFUNDED)


def full_context(context):
    return {"shop": shop_details(), **context}


def render_email(kind, context):
    """-> (subject, text, html)"""
    context = full_context(context)
    module = ENVIRONMENT.get_template(f"email/{kind}.txt").make_module(context)
    html = ENVIRONMENT.get_template(f"email/{kind}.html").render(context)
    return " ".join(module.subject.split()), str(module), html


def render_subject(kind, context):
    return render_email(kind, context)[0]


def render_sms(kind, context):
    return " ".join(ENVIRONMENT.get_template(f"sms/{kind}.txt").render(full_context(context)).split())


def has_sms(kind):
    try:
        ENVIRONMENT.get_template(f"sms/{kind}.txt")
    except TemplateNotFound:
        return False
    return True


def was_paid(order):
    """A cancelled order that had been paid is refunded: the cancellation email says so."""
    payment = order.get("payment") or {}
    return payment.get("status") in CHARGED \
        or any(step.get("status") == OrderStatus.PAID for step in order.get("history") or [])
