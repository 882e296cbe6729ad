"""The notifications service against real RabbitMQ, SMTP (aiosmtpd), S3 (moto server) and the accounts service.

Events are dispatched as the orders and inventory services publish them; every test runs on SQLite and MariaDB.
"""

import pytest
import requests
from nameko import config
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_hook
from sqlalchemy import event

from common.db import Database
from common.errors import NotFound
from common.events import AlreadyHandled
from schemas.events import validate
from services.notifications.service import NotificationsService
from tests.services.notifications.helpers import an_order, body_text, pdf_attachments, pdf_text, publish, smtp_config
from tests.support import wait_until

sent_events = []


class NotificationListener:
    name = "notification_listener"

    @event_handler("notifications", "notification.sent")
    def collect(self, envelope):
        sent_events.append(envelope)


@pytest.fixture
def customer(accounts):
    return accounts.register("ann@example.com", "correct horse", "Ann Lee", phone="+447700900123")


@pytest.fixture
def notifications(accounts, smtp_server, container_factory):
    sent_events.clear()
    with config.patch(smtp_config(smtp_server)):
        container = container_factory(NotificationsService)
        container.start()
        with ServiceRpcClient("notifications") as client:
            yield client, container


def test_a_paid_order_mails_the_customer_a_confirmation_with_the_invoice_that_downloads_from_s3(
        notifications, customer, smtp_server, container_factory):
    container_factory(NotificationListener).start()
    client, _ = notifications
    with pytest.raises(NotFound) as not_yet:
        client.get_invoice(41)
    assert not_yet.value.code == "invoice_not_found"

    order = an_order(41, customer["id"])
    paid = publish("orders", "order.paid", 41, order)

    [message] = wait_until(lambda: smtp_server.inbox.to("ann@example.com"), message="confirmation email")
    assert message["To"] == "ann@example.com" and message["From"].endswith("<shop@example.com>")
    assert message["Subject"] == "Order #41 confirmed: thank you for your payment"
    text = body_text(message)
    assert "Hello Ann Lee" in text and "2 x Green tea (TEA-001) @ 4.50 = 9.00 USD" in text
    assert "Total: 21.00 USD" in text
    assert "Blue mug" in body_text(message, "html")
    [attachment] = pdf_attachments(message)

    invoice = client.get_invoice(41)
    assert invoice["url"].startswith(config["S3_ENDPOINT_URL"]) and "X-Amz-Signature=" in invoice["url"]
    assert invoice["expires_at"].endswith("Z") and invoice["number"] in text
    download = requests.get(invoice["url"], timeout=10)
    assert download.status_code == 200 and download.content == attachment.get_content()
    pdf = pdf_text(download.content)
    for expected in ("Test Shop", invoice["number"], "Order: #41", "TEA-001", "Green tea", "Blue mug",
                     "9.00 USD", "12.00 USD", "Total", "21.00 USD", "VAT 20%", "3.50 USD", "17.50 USD", "Ann Lee"):
        assert expected in pdf, (expected, pdf)

    wait_until(lambda: len(sent_events) == 2, message="notification.sent for email and SMS")
    event = next(e for e in sent_events if e["data"]["channel"] == "email")
    assert event["data"]["kind"] == "order_confirmation" and event["data"]["recipient"] == "ann@example.com"
    assert event["data"]["source_event_id"] == paid["event_id"] and event["data"]["order_id"] == 41
    assert event["source"] == "notifications" and event["correlation_id"] == "test-correlation"
    for envelope in sent_events:
        validate(envelope)  # the Kafka contract (schemas/events)
    records = wait_until(lambda: (r := client.list_notifications(41)) and all(n["status"] == "SENT" for n in r)
                         and r, message="email and SMS sent")
    assert sorted((n["channel"], n["recipient"], n["attempts"]) for n in records) == [
        ("email", "ann@example.com", 1), ("sms", "+447700900123", 1)]


def test_each_order_event_sends_its_own_message_and_the_admin_hears_about_low_stock(
        notifications, customer, smtp_server):
    publish("orders", "order.payment_failed", 50,
            {**an_order(50, customer["id"], "PAYMENT_FAILED"),
             "payment": {"status": "FAILED", "failure_reason": "card_declined"}})
    publish("orders", "order.cancelled", 51, an_order(51, customer["id"], "CANCELLED"))
    paid_then_cancelled = an_order(52, customer["id"], "PAID")
    paid_then_cancelled["history"].append({"status": "CANCELLED", "at": paid_then_cancelled["created_at"]})
    publish("orders", "order.cancelled", 52, {**paid_then_cancelled, "status": "CANCELLED",
                                              "payment": {"status": "REFUNDED"}})
    publish("orders", "order.status_changed", 53, an_order(53, customer["id"], "SHIPPED"))
    publish("orders", "order.status_changed", 54, an_order(54, customer["id"], "DELIVERED"))
    publish("inventory", "stock.low", 11, {"product_id": 11, "on_hand": 7, "reserved": 4, "available": 3,
                                           "low_stock_threshold": 5, "version": 9})

    wait_until(lambda: len(smtp_server.inbox.to("ann@example.com")) >= 5, message="five customer emails")
    subjects = {message["Subject"]: message for message in smtp_server.inbox.to("ann@example.com")}
    assert set(subjects) == {"Order #50: your payment did not go through", "Order #51 cancelled",
                             "Order #52 cancelled and refunded", "Order #53 is on its way",
                             "Order #54 was delivered"}
    assert "card_declined" in body_text(subjects["Order #50: your payment did not go through"])
    assert "You were not charged" in body_text(subjects["Order #51 cancelled"])
    assert "We are refunding 21.00 USD" in body_text(subjects["Order #52 cancelled and refunded"])
    assert "2 High Street" in body_text(subjects["Order #53 is on its way"])
    [alert] = wait_until(lambda: smtp_server.inbox.to("admin@example.com"), message="low stock alert")
    assert alert["Subject"] == "Low stock: product 11 has 3 left" and "threshold: 5" in body_text(alert)


def test_a_redelivered_event_sends_nothing_twice_and_other_statuses_send_nothing(notifications, customer,
                                                                                   smtp_server):
    client, container = notifications
    shipped = {"event_id": "5b7a4b0e-0000-4000-8000-000000000001", "event_type": "order.status_changed",
               "event_version": 1, "occurred_at": "2026-11-24T13:00:00Z", "source": "orders",
               "correlation_id": "c-1", "aggregate_id": "60", "data": an_order(60, customer["id"], "SHIPPED")}
    paid_status = {**shipped, "event_id": "5b7a4b0e-0000-4000-8000-000000000002",
                   "data": an_order(60, customer["id"], "PAID")}

    with entrypoint_hook(container, "report_delivery_progress") as report:
        report(shipped)
        with pytest.raises(AlreadyHandled):  # the worker stops; a real delivery is acked
            report(shipped)
        report(paid_status)
    with entrypoint_hook(container, "retry_pending") as retry:
        retry()

    assert [m["Subject"] for m in smtp_server.inbox.to("ann@example.com")] == ["Order #60 is on its way"]
    assert sorted((n["kind"], n["channel"], n["status"]) for n in client.list_notifications(60)) == [
        ("order_shipped", "email", "SENT"), ("order_shipped", "sms", "SENT")]


def test_a_notification_is_claimed_in_the_transaction_that_records_it(notifications, customer, smtp_server):
    client, container = notifications
    engine = next(dep for dep in container.extensions if isinstance(dep, Database)).engine
    updates = []

    def note(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE NOTIFICATIONS"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        publish("orders", "order.status_changed", 61, an_order(61, customer["id"], "SHIPPED"))
        wait_until(lambda: [n["status"] for n in client.list_notifications(61)] == ["SENT", "SENT"],
                   message="email and SMS sent")
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(updates) == 2  # each marked sent; neither claimed by an UPDATE of its own
    assert [n["attempts"] for n in client.list_notifications(61)] == [1, 1]
    assert len(smtp_server.inbox.to("ann@example.com")) == 1


def test_a_paid_orders_invoice_row_is_written_with_its_confirmation(notifications, customer, smtp_server):
    client, container = notifications
    engine = next(dep for dep in container.extensions if isinstance(dep, Database)).engine
    open_transactions, transactions = {}, []

    def note(conn, _cursor, statement, *_args):
        open_transactions.setdefault(conn, []).append(" ".join(statement.split()[:3]).upper())

    def committed(conn):
        transactions.append(open_transactions.pop(conn, []))

    event.listen(engine, "before_cursor_execute", note)
    event.listen(engine, "commit", committed)
    try:
        publish("orders", "order.paid", 62, an_order(62, customer["id"]))
        wait_until(lambda: [n["status"] for n in client.list_notifications(62)] == ["SENT", "SENT"],
                   message="confirmation email and SMS sent")
    finally:
        event.remove(engine, "before_cursor_execute", note)
        event.remove(engine, "commit", committed)
    [recorded] = [statements for statements in transactions if "INSERT INTO NOTIFICATIONS" in statements]
    assert "INSERT INTO INVOICES" in recorded  # one transaction: the event, its messages and the invoice's number
    assert not [statements for statements in transactions
                if statements and all("INVOICES" in statement for statement in statements)
                and any(statement.startswith("SELECT") for statement in statements)]  # nothing reads it back
    assert client.get_invoice(62)["number"] in body_text(smtp_server.inbox.to("ann@example.com")[0])


def test_mail_sent_while_smtp_is_down_is_retried_until_it_arrives_once(
        accounts, smtp_down, container_factory):
    customer = accounts.register("bob@example.com", "correct horse", "Bob Stone")
    with config.patch(smtp_config(smtp_down)):
        container = container_factory(NotificationsService)
        container.start()
        with ServiceRpcClient("notifications") as client:
            publish("orders", "order.paid", 70, an_order(70, customer["id"]))

            def failed_twice():
                records = client.list_notifications(70)
                return records and records[0]["attempts"] >= 2 and records[0]

            pending = wait_until(failed_twice, message="failed attempts")
            assert pending["status"] == "PENDING" and "ConnectionRefusedError" in pending["last_error"]
            assert pending["sent_at"] is None

            smtp_down.start()
            [message] = wait_until(lambda: smtp_down.inbox.to("bob@example.com"), message="the late email")
            assert message["Subject"] == "Order #70 confirmed: thank you for your payment"
            assert len(pdf_attachments(message)) == 1
            [record] = wait_until(lambda: [n for n in client.list_notifications(70) if n["status"] == "SENT"],
                                  message="notification marked sent")
            # at least one failed attempt before the one that got through
            assert record["last_error"] is None and record["attempts"] >= 2
            with entrypoint_hook(container, "retry_pending") as retry:
                retry()
    assert len(smtp_down.inbox.messages) == 1
