"""Notifications' personal data (SQLite and MariaDB, S3 on moto): recipients and contents encrypted at rest, the
invoice written with server-side encryption, and an erasure that re-issues it without the customer's name."""

import boto3
import pytest
import requests
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient

from common.rpc import rpc
from services.notifications.service import NotificationsService
from tests.services.notifications.helpers import an_order, pdf_text, publish, smtp_config
from tests.support import assert_not_stored, wait_until

ORDER_ID = 41
customers = {}


class OrdersStandIn:
    """What notifications asks orders for when it re-issues an invoice."""

    name = "orders"

    @rpc
    def get_order(self, order_id):
        return an_order(order_id, customers["ann"])


@pytest.fixture
def notifications(accounts, smtp_server, container_factory):
    customers["ann"] = accounts.register("ann@example.com", "correct horse", "Ann Lee", phone="+447700900123")["id"]
    with config.patch(smtp_config(smtp_server)):
        container_factory(OrdersStandIn).start()
        container_factory(NotificationsService).start()
        with ServiceRpcClient("notifications") as client:
            yield client


def stored_invoice(key):
    client = boto3.client("s3", endpoint_url=config["S3_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return client.head_object(Bucket=config["S3_BUCKET"], Key=key)


def invoice_pdf(client):
    download = requests.get(client.get_invoice(ORDER_ID)["url"], timeout=10)
    assert download.status_code == 200, download.text  # never a moment without the invoice
    return pdf_text(download.content)


def test_recipients_are_encrypted_invoices_use_sse_and_an_erasure_reissues_the_invoice_nameless(
        notifications, smtp_server):
    order = an_order(ORDER_ID, customers["ann"])
    publish("orders", "order.paid", ORDER_ID, order)
    def all_sent():  # one read: two could see no rows, then rows not sent yet
        found = notifications.list_notifications(ORDER_ID)
        return found and all(n["status"] == "SENT" for n in found)

    wait_until(all_sent, message="the confirmation sent")
    invoice = notifications.get_invoice(ORDER_ID)
    key = f"invoices/{invoice['number']}.pdf"

    assert stored_invoice(key)["ServerSideEncryption"] == "AES256"
    assert "Ann Lee" in invoice_pdf(notifications)
    secrets = ("ann@example.com", "Ann Lee", "+447700900123", order["shipping_address"]["line1"])
    assert_not_stored([config["DB_URIS"]["notifications:Base"]], *secrets)

    publish("accounts", "user.erased", customers["ann"], {"id": customers["ann"], "erased_at": "2026-12-02T00:00:00Z"})

    wait_until(lambda: "Ann Lee" not in invoice_pdf(notifications), message="the invoice re-issued")
    assert "Green tea" in invoice_pdf(notifications) and stored_invoice(key)["ServerSideEncryption"] == "AES256"
    assert {(n["recipient"], n["status"]) for n in notifications.list_notifications(ORDER_ID)} == {("", "SENT")}
    assert_not_stored([config["DB_URIS"]["notifications:Base"]], *secrets)
