"""Real HTTP receivers on loopback for the webhooks tests, and the webhooks service with time compressed."""

import hashlib
import hmac
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient

from services.webhooks.service import WebhooksService

# Retries a few tenths of a second apart; the rules are the production ones (config/dev.yml says how long).
FAST = {"WEBHOOK_RETRY_INITIAL_SECONDS": 0.05, "WEBHOOK_RETRY_MAX_SECONDS": 0.3, "WEBHOOK_TIMEOUT_SECONDS": 30,
        "WEBHOOK_POLL_SECONDS": 0.1, "WEBHOOK_SWEEP_SECONDS": 0.2, "WEBHOOK_GIVE_UP_SECONDS": 3600,
        "WEBHOOK_PUBLIC_ONLY": False}


class Receiver:
    """An HTTP server that records every POST; ``answers`` are the statuses of the first requests (then 200),
    ``hang`` keeps every request waiting until the receiver stops."""

    def __init__(self, answers=(), hang=False, headers=None, tls=None):
        self.answers = list(answers)
        self.hang = hang
        self.extra_headers = headers or {}
        self.requests = []
        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.scheme = "https" if tls else "http"
        if tls:  # (certificate file, key file)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/hooks/pos?from=test"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if receiver.hang:
                    receiver.released.wait(60)
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        return Handler

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self):
        return [json.loads(request["body"]) for request in self.requests]


def verified(request, secret):
    """The receiver's check of API.md's ``X-POS-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    fields = dict(part.split("=", 1) for part in request["headers"]["X-POS-Signature"].split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


@pytest.fixture
def receivers():
    started = []

    def start(**options):
        receiver = Receiver(**options).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def webhooks_container(service_config, container_factory):
    with config.patch(FAST):
        container = container_factory(WebhooksService)
        container.start()
        yield container


@pytest.fixture
def webhooks(webhooks_container):
    with ServiceRpcClient("webhooks") as client:
        yield client
