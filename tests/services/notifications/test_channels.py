"""Email and SMS backends against real servers: a Maildir, aiosmtpd, and a local HTTP endpoint."""

import json
import mailbox
import smtplib
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from aiosmtpd.controller import Controller
from nameko import config

from services.notifications.channels import HttpSmsProvider, MaildirBackend, Mailer, PermanentFailure, SmtpBackend
from tests.services.notifications.helpers import free_port


def test_without_an_smtp_host_mail_lands_in_the_dev_maildir(tmp_path):
    with config.patch({"SMTP_HOST": "", "MAILDIR_PATH": str(tmp_path / "mail"), "MAIL_FROM": "shop@example.com"}):
        mailer = Mailer()
        mailer.setup()
    assert isinstance(mailer.backend, MaildirBackend)

    mailer.send("ann@example.com", "Hello", "plain body", "<p>html body</p>",
                [("invoice.pdf", b"%PDF-1.4", "application/pdf")], message_key="notification-1")

    [message] = mailbox.Maildir(tmp_path / "mail").values()
    assert message["To"] == "ann@example.com" and message["Subject"] == "Hello"
    assert message["Message-ID"] == "<notification-1@example.com>"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert parts["text/plain"].get_payload(decode=True).decode().strip() == "plain body"
    assert parts["application/pdf"].get_payload(decode=True) == b"%PDF-1.4"


def test_the_dev_maildir_may_already_exist_as_an_empty_folder(tmp_path):
    (tmp_path / "mail").mkdir()
    with config.patch({"SMTP_HOST": "", "MAILDIR_PATH": str(tmp_path / "mail"), "MAIL_FROM": "shop@example.com"}):
        mailer = Mailer()
        mailer.setup()

    mailer.send("ann@example.com", "Hello", "plain", "<p>html</p>", [], message_key="notification-2")

    assert [m["To"] for m in mailbox.Maildir(tmp_path / "mail").values()] == ["ann@example.com"]


def mailer_with(backend):
    mailer = Mailer()
    mailer.backend, mailer.sender, mailer.sender_name = backend, "shop@example.com", "Shop"
    return mailer


class Refusing:
    def __init__(self, code):
        self.code = code

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return f"{self.code} mailbox unavailable"


@pytest.mark.parametrize("code, permanent", [(550, True), (451, False)])
def test_a_refused_recipient_is_final_only_when_the_server_says_so(code, permanent):
    port = free_port()
    controller = Controller(Refusing(code), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mailer = mailer_with(SmtpBackend("127.0.0.1", port, security="none", timeout=5))
        expected = PermanentFailure if permanent else smtplib.SMTPRecipientsRefused
        with pytest.raises(expected):
            mailer.send("ann@example.com", "Hi", "body")
    finally:
        controller.stop()


def test_nothing_listening_is_a_transient_failure():
    mailer = mailer_with(SmtpBackend("127.0.0.1", free_port(), security="none", timeout=5))
    with pytest.raises(ConnectionRefusedError):
        mailer.send("ann@example.com", "Hi", "body")


@pytest.fixture
def sms_endpoint():
    received, answers = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Authorization"], json.loads(body)))
            self.send_response(answers.pop(0) if answers else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/sms", received, answers
    server.shutdown()
    server.server_close()


def test_the_http_sms_provider_posts_the_message_and_classifies_failures(sms_endpoint):
    url, received, answers = sms_endpoint
    provider = HttpSmsProvider(url, token="sms-token", sender="Shop", timeout=5)

    provider.send("+447700900123", "Order #1 has shipped.")
    assert received == [("Bearer sms-token", {"from": "Shop", "to": "+447700900123",
                                              "text": "Order #1 has shipped."})]
    answers.append(400)
    with pytest.raises(PermanentFailure):
        provider.send("+447700900123", "bad number")
    answers.append(503)
    with pytest.raises(requests.HTTPError):
        provider.send("+447700900123", "try later")


class Keeping:
    def __init__(self):
        self.messages = []

    def send(self, message):
        self.messages.append(message)


def flattened(message):
    """The message's bytes with its MIME boundaries (random per flattening) named by their order."""
    data = message.as_bytes()
    for number, part in enumerate(message.walk()):
        if part.get_boundary():
            data = data.replace(part.get_boundary().encode(), f"boundary-{number}".encode())
    return data


def test_reused_header_classes_write_the_bytes_the_stdlib_policy_writes(monkeypatch):
    from email.policy import default

    from services.notifications import channels

    monkeypatch.setattr(channels, "formatdate", lambda localtime=False: "Thu, 03 Dec 2026 19:00:00 -0000")
    backend = Keeping()
    mailer = mailer_with(backend)
    mailer.sender_name = "Boutique Čaj & Kaffee"
    for policy in (default, channels.POLICY):
        monkeypatch.setattr(channels, "POLICY", policy)
        mailer.send("Zoë Ødegård <zoe@example.com>", "Ihre Bestellung — 注文 #42", "Grüße, Zoë\n" * 40,
                    "<p>Grüße</p>", [("invoice-7.pdf", b"%PDF-1.4 \x00\xff", "application/pdf")], "notification-7")

    stdlib, ours = backend.messages
    assert ours.policy.header_factory["Subject"] is ours.policy.header_factory["subject"]
    assert default.header_factory["Subject"] is not default.header_factory["Subject"]  # what the cache is for
    assert flattened(ours) == flattened(stdlib)
    assert b"=?utf-8?" in flattened(ours)  # the non-ASCII headers were encoded, not passed raw
