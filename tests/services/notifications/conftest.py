"""Real parts for the notifications tests: an SMTP server (aiosmtpd), an S3 API (moto server), the accounts service."""

import email
import subprocess
import sys
import uuid
from email import policy
from pathlib import Path

import boto3
import pytest
import requests
from aiosmtpd.controller import Controller
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient

from services.accounts.service import AccountsService
from tests.services.notifications.helpers import free_port
from tests.support import wait_until

CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
S3_CREDENTIALS = {"S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "S3_REGION": "us-east-1"}
# Retries within a second or so, so an outage test is quick; the logic is the production one.
FAST_RETRIES = {"NOTIFY_RETRY_INTERVAL": 0.2, "NOTIFY_RETRY_BACKOFF": 0.1, "NOTIFY_RETRY_MAX_BACKOFF": 1,
                "NOTIFY_SEND_ATTEMPTS": 2, "NOTIFY_SEND_BACKOFF": 0.01}


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address):
        return [message for recipients, message in self.messages if address in recipients]


class SmtpServer:
    def __init__(self):
        self.port = free_port()
        self.inbox = Inbox()
        self.controller = None

    def start(self):
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down():
    """An SMTP address where nothing listens yet; ``start()`` brings the server up on it."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_endpoint():
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers():
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=30, message="moto_server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_endpoint):
    bucket = f"invoices-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    return {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_endpoint, **S3_CREDENTIALS}


@pytest.fixture
def notify_config(service_config, s3_bucket, tmp_path):
    """Everything but the SMTP address (each test picks a server that is up or down)."""
    settings = {**CHEAP_ARGON2, **FAST_RETRIES, **s3_bucket, "MAIL_FROM": "shop@example.com",
                "SHOP_NAME": "Test Shop", "SHOP_ADDRESS": "1 Market Street\nSpringfield", "SHOP_TAX_ID": "GB123",
                "INVOICE_TAX_RATE": "0.20", "INVOICE_DIR": str(tmp_path / "invoices"),
                "MAILDIR_PATH": str(tmp_path / "mail")}
    with config.patch(settings):
        yield config


@pytest.fixture
def accounts(notify_config, container_factory):
    container_factory(AccountsService).start()
    with ServiceRpcClient("accounts") as client:
        yield client
