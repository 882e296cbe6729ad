"""The admin's webhook routes over real HTTP: the gateway, accounts and webhooks services on the real broker, a real
receiver on loopback. Hostile input gets the API.md error body, never a 500."""

import pytest
from nameko import config
from nameko.standalone.events import event_dispatcher

from common.events import make_envelope
from gateway.service import GatewayService
from services.accounts.service import AccountsService
from services.webhooks.service import WebhooksService
from tests.gateway.helpers import assert_error
from tests.services.webhooks.conftest import FAST, Receiver, verified
from tests.support import wait_until

CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


@pytest.fixture
def gateway(service_config, web_config, container_factory):
    with config.patch({**FAST, **CHEAP_ARGON2}):
        for service in (AccountsService, WebhooksService, GatewayService):
            container_factory(service).start()
        yield


@pytest.fixture
def admin(gateway, http):
    answer = http.post("/auth/token", json={"email": "admin@example.com", "password": "admin-password-1"})
    return answer.json()["access_token"]


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def test_the_admin_subscribes_a_url_and_sees_what_was_delivered(http, admin, receiver):
    made = http.post("/webhooks", json={"url": receiver.url, "events": ["order.paid"], "description": "ERP"},
                     token=admin)
    assert made.status_code == 201, made.text
    hook = made.json()
    assert made.headers["Location"] == f"/webhooks/{hook['id']}"
    assert hook["secret"].startswith("whsec_") and hook["active"] is True and hook["events"] == ["order.paid"]
    shown = http.get(f"/webhooks/{hook['id']}", token=admin).json()
    assert "secret" not in shown and shown["url"] == receiver.url
    assert [item["id"] for item in http.get("/webhooks", token=admin).json()["items"]] == [hook["id"]]

    envelope = make_envelope("order.paid", 12, {"id": 12, "status": "PAID"}, source="orders")
    event_dispatcher()("orders", "order.paid", envelope)
    wait_until(lambda: http.get(f"/webhooks/{hook['id']}/deliveries", token=admin).json()["total"] == 1
               and receiver.requests, message="the delivery")
    assert verified(receiver.requests[0], hook["secret"])
    page = http.get(f"/webhooks/{hook['id']}/deliveries", params={"page_size": 5}, token=admin).json()
    (delivery,) = page["items"]
    assert delivery["event_id"] == envelope["event_id"] and delivery["event_type"] == "order.paid"
    assert page["page"] == 1 and page["page_size"] == 5

    again = http.post(f"/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver", token=admin)
    assert again.status_code == 202 and again.json()["event_id"] == envelope["event_id"]
    wait_until(lambda: len(receiver.requests) == 2, message="the redelivery")

    changed = http.patch(f"/webhooks/{hook['id']}", json={"events": ["*"], "active": False}, token=admin).json()
    assert changed["events"] == ["*"] and changed["active"] is False and changed["deactivated_at"]
    assert http.patch(f"/webhooks/{hook['id']}", json={"active": True}, token=admin).json()["active"] is True
    assert http.delete(f"/webhooks/{hook['id']}", token=admin).status_code == 204
    assert_error(http.get(f"/webhooks/{hook['id']}", token=admin), 404, "webhook_not_found")
    assert http.get("/webhooks", token=admin).json() == {"items": []}


def test_only_the_admin_may_touch_webhooks(http, admin):
    registered = http.post("/auth/register", json={"email": "ann@example.com", "password": "correct-horse",
                                                   "name": "Ann"})
    assert registered.status_code == 201
    ann = http.post("/auth/token", json={"email": "ann@example.com", "password": "correct-horse"}).json()
    body = {"url": "http://127.0.0.1:9/", "events": ["*"]}
    assert_error(http.post("/webhooks", json=body), 401, "invalid_token")
    assert_error(http.post("/webhooks", json=body, token=ann["access_token"]), 403, "forbidden")
    assert_error(http.get("/webhooks", token=ann["access_token"]), 403, "forbidden")
    assert_error(http.get("/webhooks/1/deliveries"), 401, "invalid_token")


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://127.0.0.1/x", "events": ["*"]}, "url"),
    ({"url": "javascript:alert(1)", "events": ["*"]}, "url"),
    ({"url": "http://user:pw@127.0.0.1/", "events": ["*"]}, "url"),
    ({"url": "http://127.0.0.1:99999/", "events": ["*"]}, "url"),
    ({"url": "http://127.0.0.1/a b", "events": ["*"]}, "url"),
    ({"url": "http://" + "a" * 2100 + ".com/", "events": ["*"]}, "url"),
    ({"url": "http://no-such-host.invalid/", "events": ["*"]}, "url"),
    ({"url": ["http://127.0.0.1/"], "events": ["*"]}, "url"),
    ({"url": "http://127.0.0.1/\ud800", "events": ["*"]}, "url"),
    ({"url": "http://127.0.0.1/", "events": []}, "events"),
    ({"url": "http://127.0.0.1/", "events": ["order.shipped"]}, "events.0"),
    ({"url": "http://127.0.0.1/", "events": ["*", "order.paid"]}, "events"),
    ({"url": "http://127.0.0.1/", "events": "order.paid"}, "events"),
    ({"url": "http://127.0.0.1/", "events": [{"$ne": 1}]}, "events.0"),
    ({"url": "http://127.0.0.1/", "events": ["*"], "description": "x" * 300}, "description"),
    ({"events": ["*"]}, "url"),
])
def test_a_bad_webhook_is_a_validation_error(http, admin, body, field):
    error = assert_error(http.post("/webhooks", json=body, token=admin), 422, "validation_error")
    assert field in error["details"], error


def test_hostile_ids_bodies_and_queries_get_the_error_body(http, admin, receiver):
    hook = http.post("/webhooks", json={"url": receiver.url, "events": ["*"]}, token=admin).json()
    assert_error(http.get("/webhooks/abc", token=admin), 404)
    assert_error(http.get("/webhooks/99999999999999999999", token=admin), 404)
    assert_error(http.get("/webhooks/424242", token=admin), 404, "webhook_not_found")
    assert_error(http.get("/webhooks/424242/deliveries", token=admin), 404, "webhook_not_found")
    assert_error(http.post(f"/webhooks/{hook['id']}/deliveries/77/redeliver", token=admin), 404,
                 "delivery_not_found")
    assert_error(http.patch(f"/webhooks/{hook['id']}", json={}, token=admin), 422, "validation_error")
    assert_error(http.patch(f"/webhooks/{hook['id']}", json={"active": "maybe"}, token=admin), 422)
    assert_error(http.patch(f"/webhooks/{hook['id']}", json={"url": "gopher://x"}, token=admin), 422)
    assert_error(http.post("/webhooks", data="{not json", headers={"Content-Type": "application/json"},
                           token=admin), 400, "malformed_json")
    assert_error(http.post("/webhooks", data="url=x", headers={"Content-Type": "text/plain"}, token=admin), 415)
    assert_error(http.get(f"/webhooks/{hook['id']}/deliveries", params={"status": "LOST"}, token=admin), 422)
    assert_error(http.get(f"/webhooks/{hook['id']}/deliveries", params={"page_size": 1000}, token=admin), 422)
    assert http.get(f"/webhooks/{hook['id']}", token=admin).json()["url"] == receiver.url  # unchanged
