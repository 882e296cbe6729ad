"""A webhook that keeps failing for WEBHOOK_GIVE_UP_SECONDS (a day; a second here) is deactivated and the admin is
emailed by the notifications service (real SMTP server, aiosmtpd)."""

import pytest
from nameko import config
from nameko.standalone.events import event_dispatcher

from common.events import make_envelope
from services.notifications.service import NotificationsService
from tests.services.notifications.conftest import SmtpServer
from tests.services.notifications.helpers import body_text, smtp_config
from tests.support import wait_until


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def notifications(service_config, smtp_server, container_factory, tmp_path):
    with config.patch({**smtp_config(smtp_server), "S3_BUCKET": "", "INVOICE_DIR": str(tmp_path / "invoices")}):
        container_factory(NotificationsService).start()
        yield


def test_a_webhook_failing_for_the_whole_window_is_deactivated_and_the_admin_emailed(
        webhooks, receivers, notifications, smtp_server):
    receiver = receivers(answers=[500] * 1000)
    with config.patch({"WEBHOOK_GIVE_UP_SECONDS": 1}):
        hook = webhooks.create_webhook({"url": receiver.url + "&token=receivers-own-token", "events": ["*"]})
        envelope = make_envelope("product.updated", 2, {"id": 2, "sku": "TEA-1"}, source="products")
        event_dispatcher()("products", "product.updated", envelope)

        wait_until(lambda: not webhooks.get_webhook(hook["id"])["active"], message="deactivation")

    shown = webhooks.get_webhook(hook["id"])
    assert shown["deactivated_at"] and shown["failing_since"] <= shown["deactivated_at"]
    (delivery,) = webhooks.list_deliveries(hook["id"])["items"]
    assert delivery["status"] == "FAILED" and delivery["attempts"] >= 2 and delivery["last_status_code"] == 500
    assert len(receiver.requests) == delivery["attempts"]
    [mail] = wait_until(lambda: smtp_server.inbox.to("admin@example.com"), message="the admin's email")
    assert mail["Subject"] == f"Webhook {hook['id']} was deactivated after failing for a day"
    text = body_text(mail)
    assert "127.0.0.1" in text and "HTTP 500" in text and f"PATCH /webhooks/{hook['id']}" in text
    assert "receivers-own-token" not in mail.as_string() and hook["secret"] not in mail.as_string()

    witness = receivers()
    webhooks.create_webhook({"url": witness.url, "events": ["*"]})
    event_dispatcher()("products", "product.updated", make_envelope("product.updated", 3, {"id": 3},
                                                                    source="products"))
    wait_until(lambda: witness.requests, message="the next event handled")  # one event at a time: 3 after 2
    assert len(webhooks.list_deliveries(hook["id"])["items"]) == 1  # nothing is recorded for an inactive webhook
    webhooks.update_webhook(hook["id"], {"active": True})
    assert webhooks.get_webhook(hook["id"])["failing_since"] is None  # back, with a clean slate
