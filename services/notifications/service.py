"""Notifications: tells customers (and the admin) what happened, and issues the PDF invoice of every paid order.

Events in (the envelope of common.events; ``data`` is the order dict of API.md for orders):
- orders ``order.paid`` -> invoice + ``order_confirmation`` (PDF attached, download link);
  ``order.payment_failed`` -> ``payment_failed``; ``order.cancelled`` -> ``order_cancelled`` (says "refunded" when
  the order had been paid); ``order.status_changed`` to SHIPPED / DELIVERED -> ``order_shipped`` / ``order_delivered``.
  Customer messages go to the account's email (``accounts.get_user``), and by SMS too where the account has a
  phone and the kind has an SMS template.
- inventory ``stock.low`` -> ``stock_low`` to ``ADMIN_EMAIL``.
- accounts ``user.erased`` -> the customer's recipients and message contents forgotten, their invoices re-issued
  without the name and address (or, if orders cannot answer now, on the next ``get_invoice``).
- webhooks ``webhook.deactivated`` -> ``webhook_deactivated`` to ``ADMIN_EMAIL`` (the URL's host only: a URL
  may carry a receiver's token).
Event out: ``notification.sent`` (``schemas.notifications.NotificationSentSchema``), through the outbox.
RPC:
- ``get_invoice(order_id)`` -> ``{url, expires_at, number, order_id}``; ``NotFound(invoice_not_found)`` until the
  order is PAID (and its invoice issued). The caller checks who may see the order.
- ``download_invoice(token)`` -> ``{filename, content_type, content_base64}`` for the gateway's ``/invoices/<token>``
  (local-folder store only); ``Forbidden(invalid_link | link_expired)``.
- ``list_notifications(order_id)`` -> the notifications recorded for an order.
Every message is a row, unique per (event, kind, channel), so a redelivered event never sends twice. A send is
retried a few times at once (tenacity); if it still fails the row stays PENDING and ``retry_pending`` tries again
with growing back-off until ``NOTIFY_MAX_ATTEMPTS``.
"""

import base64
import json
import logging
from datetime import timedelta
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from sqlalchemy import select, update
from tenacity import Retrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from common.correlation import CorrelationId
from common.db import Database
from common.errors import NotFound
from common.events import domain_event_handler, utcnow
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox
from common.rpc import ServiceRpc, rpc
from common.timers import config_timer
from common.validation import load_id
from schemas.common import rfc3339
from schemas.notifications import NotificationSchema, NotificationSentSchema
from services.notifications.channels import Mailer, PermanentFailure, Sms, setting
from services.notifications.invoices import InvoiceStore, render_invoice_pdf, shop_details
from services.notifications.messages import STATUS_KINDS, has_sms, render_email, render_sms, was_paid
from services.notifications.models import (
    FAILED,
    PENDING,
    SENT,
    Base,
    Invoice,
    Notification,
    OutboxMessage,
    ProcessedEvent,
    claim,
    claimed,
    due_notification_ids,
    erase_customer,
    invoice_for_order,
)

log = logging.getLogger(__name__)

INVOICED_KIND = "order_confirmation"  # the message that carries the order's invoice (PDF attached, download link)


class NotificationsService(Operational):
    name = "notifications"

    db = Database(Base, handled_events=ProcessedEvent, session_options={"expire_on_commit": False})
    outbox = Outbox(OutboxMessage)
    accounts = ServiceRpc("accounts")
    orders = ServiceRpc("orders")
    mailer = Mailer()
    sms = Sms()
    invoices = InvoiceStore()
    correlation = CorrelationId()
    metrics = Metrics()

    @domain_event_handler("orders", "order.paid")
    def confirm_order(self, envelope):
        order = self._order(envelope)
        if not self._notify_customer(envelope, order, INVOICED_KIND):
            self._issue_invoice(order)  # the confirmation issues it when composed; without one, here

    @domain_event_handler("orders", "order.payment_failed")
    def report_payment_failure(self, envelope):
        self._notify_customer(envelope, self._order(envelope), "payment_failed")

    @domain_event_handler("orders", "order.cancelled")
    def report_cancellation(self, envelope):
        order = self._order(envelope)
        self._notify_customer(envelope, order, "order_cancelled", refunded=was_paid(order))

    @domain_event_handler("orders", "order.status_changed")
    def report_delivery_progress(self, envelope):
        order = self._order(envelope)
        kind = STATUS_KINDS.get(order.get("status"))
        if kind:
            self._notify_customer(envelope, order, kind)

    @domain_event_handler("inventory", "stock.low")
    def alert_low_stock(self, envelope):
        self._record(envelope, "stock_low", [("email", setting("ADMIN_EMAIL"))], {"stock": envelope["data"]})

    @domain_event_handler("accounts", "user.erased")
    def forget_customer(self, envelope):
        with self.db.get_session() as session:
            stored = erase_customer(session, load_id(envelope["data"]["id"], "id"))
        for order_id, storage_key in stored:
            try:
                self._issue_invoice(self._anonymous_order(order_id))  # replaces the PDF under the same key
            except Exception:
                self.invoices.delete(storage_key)  # the PDF with the name goes anyway
                log.warning("invoice of order %s not re-issued yet; get_invoice will", order_id, exc_info=True)

    @domain_event_handler("webhooks", "webhook.deactivated")
    def alert_webhook_deactivated(self, envelope):
        webhook = {**envelope["data"], "host": urlsplit(str(envelope["data"].get("url", ""))).hostname}
        webhook.pop("url", None)
        self._record(envelope, "webhook_deactivated", [("email", setting("ADMIN_EMAIL"))], {"webhook": webhook})

    @config_timer("NOTIFY_RETRY_INTERVAL", default=30)
    def retry_pending(self):
        with self.db.get_session() as session:
            due = due_notification_ids(session, utcnow())
        for notification_id in due:
            self._deliver(notification_id)

    @rpc
    def get_invoice(self, order_id):
        order_id = load_id(order_id, "order_id")
        with self.db.get_session() as session:
            invoice = session.scalar(select(Invoice).where(Invoice.order_id == order_id))
        if invoice is not None and invoice.erased_at is not None and not invoice.storage_key:
            invoice = self._issue_invoice(self._anonymous_order(order_id))  # not re-issued after the erasure yet
        if invoice is None or not invoice.storage_key:
            raise NotFound(f"Order {order_id} has no invoice yet: it is issued once the order is paid.",
                           code="invoice_not_found")
        url, expires_at = self.invoices.url(invoice.storage_key, setting("INVOICE_URL_TTL_SECONDS", 900))
        return {"url": url, "expires_at": rfc3339(expires_at), "number": invoice.number, "order_id": order_id}

    @rpc
    def download_invoice(self, token):
        key = self.invoices.open_token(str(token))
        content = self.invoices.get(key)
        return {"filename": PurePosixPath(key).name, "content_type": "application/pdf",
                "content_base64": base64.b64encode(content).decode("ascii")}

    @rpc(read_only=True)
    def list_notifications(self, order_id):
        with self.db.get_session() as session:
            rows = session.scalars(select(Notification).where(Notification.order_id == load_id(order_id, "order_id"))
                                   .order_by(Notification.id)).all()
            return NotificationSchema(many=True).dump(rows)

    # --- what to send ------------------------------------------------------------------------------

    def _order(self, envelope):
        """The order of an orders event; asks the orders service if the event carries less than the full dict."""
        order = envelope.get("data") or {}
        if order.get("items") is None or order.get("customer_id") is None:
            order = self.orders.get_order(int(order.get("id") or envelope["aggregate_id"]))
        return order

    def _notify_customer(self, envelope, order, kind, **extra):
        """Record (and try) the customer's messages of ``kind``; whether any was recorded."""
        try:
            customer = self.accounts.get_user(order["customer_id"])
        except NotFound:
            log.warning("order %s: customer %s is gone; no %s sent", order["id"], order["customer_id"], kind)
            return False
        channels = [("email", customer.get("email"))]
        if customer.get("phone") and has_sms(kind):
            channels.append(("sms", customer["phone"]))
        context = {"order": order, "customer": {"name": customer.get("name") or "", "email": customer["email"]},
                   **extra}
        return self._record(envelope, kind, channels, context, order_id=order["id"], customer_id=order["customer_id"])

    def _record(self, envelope, kind, channels, context, order_id=None, customer_id=None):
        """Write the messages this event owes, then try them straight away.

        The handler's first transaction: the event is recorded as handled with these rows (common.events), and what
        follows (sending, the invoice) is retried by ``retry_pending`` or redone safely. The invoiced message's
        invoice row (its number) is written in it too, so composing the message reads nothing back.
        """
        subject, now, invoice = render_email(kind, context)[0], utcnow(), None
        with self.db.get_session() as session:
            rows = [claimed(Notification(event_id=envelope["event_id"], kind=kind, channel=channel,
                                         recipient=recipient, subject=subject, context=json.dumps(context),
                                         order_id=order_id, customer_id=customer_id), now, self._lease_seconds())
                    for channel, recipient in channels if recipient]
            session.add_all(rows)
            if rows and kind == INVOICED_KIND:
                invoice = invoice_for_order(session, context["order"], setting("INVOICE_NUMBER_PREFIX", "INV-"))
        for notification in rows:
            self._send(notification, invoice)
        return bool(rows)

    def _issue_invoice(self, order):
        """The order's invoice, rendered and stored the first time it is needed."""
        return self._issue_invoice_pdf(order)[0]

    def _issue_invoice_pdf(self, order, invoice=None):
        """``(invoice, its PDF if it was rendered now else None)``: the confirmation attaches the PDF it just
        stored instead of reading it back from the store. ``invoice``: the order's row, if the caller holds it."""
        if invoice is None:
            with self.db.get_session() as session:
                invoice = invoice_for_order(session, order, setting("INVOICE_NUMBER_PREFIX", "INV-"))
        if invoice.storage_key:
            return invoice, None
        key = f"invoices/{invoice.number}.pdf"
        pdf = render_invoice_pdf(order, invoice.number, invoice.created_at, shop_details())
        self.invoices.put(key, pdf)
        with self.db.get_session() as session:
            session.execute(update(Invoice).where(Invoice.id == invoice.id).values(storage_key=key))
        invoice.storage_key = key
        return invoice, pdf

    def _anonymous_order(self, order_id):
        """The order as an erased customer's invoice shows it: lines and totals, no name or address."""
        return {**self.orders.get_order(order_id), "shipping_address": {}}

    # --- how it is sent ----------------------------------------------------------------------------

    def _deliver(self, notification_id):
        with self.db.get_session() as session:
            if not claim(session, notification_id, utcnow(), self._lease_seconds()):
                return
            notification = session.get(Notification, notification_id)
        self._send(notification)

    def _lease_seconds(self):
        return int(setting("NOTIFY_CLAIM_SECONDS", 300))

    def _send(self, notification, invoice=None):
        """One attempt at a notification this worker has claimed; marked sent, or failed for a later retry."""
        notification_id = notification.id
        try:
            send = self._compose(notification, invoice)
            for attempt in Retrying(
                    stop=stop_after_attempt(int(setting("NOTIFY_SEND_ATTEMPTS", 3))),
                    wait=wait_exponential(multiplier=float(setting("NOTIFY_SEND_BACKOFF", 0.5)), max=5),
                    retry=retry_if_not_exception_type(PermanentFailure), reraise=True):
                with attempt:
                    send()
        except Exception as exc:
            log.warning("notification %s (%s by %s) failed: %s", notification.id, notification.kind,
                        notification.channel, type(exc).__name__)  # the error can quote the address
            self._mark_failed(notification_id, exc, permanent=isinstance(exc, PermanentFailure))
        else:
            self._mark_sent(notification_id)

    def _compose(self, notification, invoice=None):
        context = json.loads(notification.context)
        message_key = f"notification-{notification.id}"
        if notification.channel == "sms":
            text = render_sms(notification.kind, context)
            return lambda: self.sms.send(notification.recipient, text)
        attachments = []
        if notification.kind == INVOICED_KIND:
            context["invoice"], attachments = self._invoice_for_email(context["order"], invoice)
        subject, text, html = render_email(notification.kind, context)
        return lambda: self.mailer.send(notification.recipient, subject, text, html, attachments, message_key)

    def _invoice_for_email(self, order, invoice=None):
        invoice, pdf = self._issue_invoice_pdf(order, invoice)
        url, expires_at = self.invoices.url(invoice.storage_key, setting("INVOICE_EMAIL_LINK_TTL_SECONDS", 604800))
        if pdf is None:  # issued before (a retried send, or a re-issue after an erasure): the stored one
            pdf = self.invoices.get(invoice.storage_key)
        link = {"number": invoice.number, "url": url, "expires_at": rfc3339(expires_at)}
        return link, [(f"invoice-{invoice.number}.pdf", pdf, "application/pdf")]

    def _mark_sent(self, notification_id):
        with self.db.get_session() as session:
            notification = session.get(Notification, notification_id)
            notification.status, notification.sent_at, notification.last_error = SENT, utcnow(), None
            self.outbox.add(session, "notification.sent", notification.id,
                            NotificationSentSchema().dump(notification))

    def _mark_failed(self, notification_id, exc, permanent):
        with self.db.get_session() as session:
            notification = session.get(Notification, notification_id)
            notification.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            if permanent or notification.attempts >= int(setting("NOTIFY_MAX_ATTEMPTS", 20)):
                notification.status = FAILED
                return
            backoff = float(setting("NOTIFY_RETRY_BACKOFF", 30)) * 2 ** (notification.attempts - 1)
            notification.status = PENDING
            notification.next_attempt_at = utcnow() + timedelta(
                seconds=min(backoff, float(setting("NOTIFY_RETRY_MAX_BACKOFF", 3600))))

