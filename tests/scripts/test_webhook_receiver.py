"""The example receiver of docs/webhooks.md (scripts/webhook_receiver.py) gets real deliveries from the webhooks
service: each event printed once (a redelivery is dropped), forged or replayed requests refused."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from nameko import config
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcClient

from common.events import make_envelope
from scripts.tansu import free_port
from services.webhooks.courier import signature
from services.webhooks.service import WebhooksService
from tests.services.webhooks.conftest import FAST
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def webhooks(db_backend, service_config, container_factory):
    if db_backend != "sqlite":
        pytest.skip("the receiver does not care which database the shop uses")
    with config.patch(FAST):
        container_factory(WebhooksService).start()
        with ServiceRpcClient("webhooks") as client:
            yield client


@pytest.fixture
def start_receiver(tmp_path):
    started = []

    def start(port, secret):
        output = tmp_path / "receiver.out"
        process = subprocess.Popen([sys.executable, "-m", "scripts.webhook_receiver", "--port", str(port)], cwd=ROOT,
                                   env={**os.environ, "WEBHOOK_SECRET": secret}, stdout=open(output, "wb"),
                                   stderr=subprocess.PIPE, text=True)
        started.append(process)
        assert "listening on" in process.stderr.readline()
        return output

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def printed(output):
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_the_example_receiver_acts_once_per_event_and_only_on_signed_requests(webhooks, start_receiver):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    hook = webhooks.create_webhook({"url": url, "events": ["order.paid", "order.cancelled"]})
    output = start_receiver(port, hook["secret"])

    paid = make_envelope("order.paid", 5, {"id": 5, "status": "PAID"}, source="orders")
    event_dispatcher()("orders", "order.paid", paid)
    first = wait_until(lambda: webhooks.list_deliveries(hook["id"], {"status": "DELIVERED"})["items"],
                       message="the first delivery")[0]
    webhooks.redeliver(hook["id"], first["id"])  # the same event again: dropped by its id
    cancelled = make_envelope("order.cancelled", 5, {"id": 5, "status": "CANCELLED"}, source="orders")
    event_dispatcher()("orders", "order.cancelled", cancelled)

    wait_until(lambda: len(webhooks.list_deliveries(hook["id"], {"status": "DELIVERED"})["items"]) == 3,
               message="three deliveries (one a repeat)")
    assert [event["event_id"] for event in printed(output)] == [paid["event_id"], cancelled["event_id"]]

    body = json.dumps({**paid, "event_id": "forged"}).encode()
    now = int(time.time())
    for header in (signature("not-the-secret", body, now), signature(hook["secret"], body, now - 3600), "v1=abc",
                   None):
        answer = requests.post(url, data=body, headers={"X-POS-Signature": header} if header else {}, timeout=10)
        assert answer.status_code == 401
    assert requests.post(url, data=body, headers={"X-POS-Signature": signature(hook["secret"], body, now)},
                         timeout=10).status_code == 204  # a fresh, genuine signature is what it takes
    wait_until(lambda: len(printed(output)) == 3, message="the genuine request printed")
    assert [event["event_id"] for event in printed(output)][-1] == "forged"
