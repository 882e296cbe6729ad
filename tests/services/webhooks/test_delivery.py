"""Deliveries to real HTTP receivers on loopback: signed, in order, retried, isolated from each other.

Events are dispatched as the services' outboxes publish them (and, for stock.low, by the real inventory service);
every test runs on SQLite and MariaDB.
"""

import logging
import subprocess

from nameko import config
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcClient

from common.events import make_envelope
from services.inventory.service import InventoryService
from services.webhooks.service import WebhooksService
from tests.services.webhooks.conftest import verified
from tests.support import assert_not_stored, wait_until


def publish(source, event_type, aggregate_id, data):
    envelope = make_envelope(event_type, aggregate_id, data, source=source, correlation_id="test-correlation")
    event_dispatcher()(source, event_type, envelope)
    return envelope


def an_order(order_id, status):
    return {"id": order_id, "status": status, "customer_id": 7, "total": "9.00", "currency": "USD",
            "payment_token": "tok_visa"}


def deliveries(webhooks, hook, status=None):
    return webhooks.list_deliveries(hook["id"], {"status": status} if status else None)["items"]


def test_a_receiver_gets_an_orders_events_signed_and_in_order(webhooks, receivers):
    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.created", "order.paid"]})
    other = receivers()
    webhooks.create_webhook({"url": other.url, "events": ["stock.low"]})

    sent = [publish("orders", "order.created", 41, an_order(41, "PENDING_PAYMENT")),
            publish("orders", "order.paid", 41, an_order(41, "PAID")),
            publish("orders", "order.cancelled", 41, an_order(41, "CANCELLED"))]  # not subscribed

    wait_until(lambda: len(receiver.requests) >= 2, message="two deliveries")
    wait_until(lambda: all(d["status"] == "DELIVERED" for d in deliveries(webhooks, hook)), message="recorded")
    assert [event["event_type"] for event in receiver.events()] == ["order.created", "order.paid"]
    assert [event["event_id"] for event in receiver.events()] == [sent[0]["event_id"], sent[1]["event_id"]]
    for request, envelope in zip(receiver.requests, sent, strict=False):
        assert verified(request, hook["secret"])
        assert not verified(request, hook["secret"] + "x")
        assert request["headers"]["X-POS-Event-Id"] == envelope["event_id"]
        assert request["headers"]["X-POS-Event-Type"] == envelope["event_type"]
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["path"] == "/hooks/pos?from=test"
        assert request["headers"]["Host"] == f"127.0.0.1:{receiver.server.server_address[1]}"
    body = receiver.events()[1]
    assert set(body) == {"event_id", "event_type", "event_version", "occurred_at", "source", "correlation_id",
                         "aggregate_id", "data"}
    assert body["aggregate_id"] == "41" and body["data"]["status"] == "PAID"
    assert "payment_token" not in body["data"]  # the Kafka value's rules
    assert b" " not in receiver.requests[1]["body"].split(b'"data"')[0]  # compact, as the Kafka value
    assert other.requests == []


def test_one_aggregates_events_wait_for_the_one_before_them(webhooks, receivers):
    receiver = receivers(answers=[503, 503])
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["*"]})

    publish("orders", "order.created", 5, an_order(5, "PENDING_PAYMENT"))
    publish("orders", "order.paid", 5, an_order(5, "PAID"))
    publish("orders", "order.status_changed", 5, an_order(5, "SHIPPED"))

    wait_until(lambda: len(deliveries(webhooks, hook, "DELIVERED")) == 3, message="all three delivered")
    got = [event["event_type"] for event in receiver.events()]
    assert got == ["order.created", "order.created", "order.created", "order.paid", "order.status_changed"]


def test_a_receiver_failing_three_times_gets_the_event_when_it_recovers(webhooks, receivers, caplog):
    caplog.set_level(logging.DEBUG)
    receiver = receivers(answers=[500, 502, 404])
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.paid"]})

    envelope = publish("orders", "order.paid", 9, an_order(9, "PAID"))

    delivered = wait_until(lambda: deliveries(webhooks, hook, "DELIVERED"), message="delivered after retries")
    assert [request["headers"]["X-POS-Event-Id"] for request in receiver.requests] == [envelope["event_id"]] * 4
    delivery = delivered[0]
    assert delivery["attempts"] == 4 and delivery["last_status_code"] == 200 and delivery["last_error"] is None
    assert [attempt["status_code"] for attempt in delivery["history"]] == [500, 502, 404, 200]
    assert [attempt["error"] for attempt in delivery["history"]] == ["HTTP 500", "HTTP 502", "HTTP 404", None]
    assert all(attempt["latency_ms"] >= 0 for attempt in delivery["history"])
    assert webhooks.get_webhook(hook["id"])["failing_since"] is None  # a success forgets the failures
    assert "attempt failed: HTTP 502" in caplog.text  # failures are logged, the secret and signatures never
    signatures = {request["headers"]["X-POS-Signature"].split("v1=")[1] for request in receiver.requests}
    assert hook["secret"] not in caplog.text and not any(digest in caplog.text for digest in signatures)


def test_connection_errors_are_retried_and_recorded(webhooks, receivers):
    receiver = receivers()
    port = receiver.server.server_address[1]
    receiver.stop()  # nothing listens there any more
    hook = webhooks.create_webhook({"url": f"http://127.0.0.1:{port}/", "events": ["order.paid"]})

    publish("orders", "order.paid", 3, an_order(3, "PAID"))

    pending = wait_until(lambda: [d for d in deliveries(webhooks, hook) if d["attempts"] >= 2], message="retries")
    assert pending[0]["status"] == "PENDING" and pending[0]["last_status_code"] is None
    assert "Error" in pending[0]["last_error"] and pending[0]["next_attempt_at"]
    assert webhooks.get_webhook(hook["id"])["failing_since"] is not None


def test_a_hanging_receiver_does_not_hold_up_another_webhook(webhooks, receivers):
    hanging = receivers(hang=True)  # answers only when the test ends, long after the other's deliveries
    healthy = receivers()
    webhooks.create_webhook({"url": hanging.url, "events": ["order.paid"]})
    webhooks.create_webhook({"url": healthy.url, "events": ["order.paid"]})

    for order_id in (1, 2, 3):
        publish("orders", "order.paid", order_id, an_order(order_id, "PAID"))

    wait_until(lambda: len(healthy.requests) == 3, message="the healthy receiver's deliveries")
    assert len(hanging.requests) == 1  # still on its first request: one courier per webhook, one at a time
    assert webhooks.ping() == "pong"  # and the service answers meanwhile


def test_an_attempt_that_outlasts_the_timeout_is_cut_off_and_retried(webhooks, receivers):
    hanging = receivers(hang=True)
    with config.patch({"WEBHOOK_TIMEOUT_SECONDS": 0.5}):
        hook = webhooks.create_webhook({"url": hanging.url, "events": ["order.paid"]})
        publish("orders", "order.paid", 16, an_order(16, "PAID"))

        retried = wait_until(lambda: [d for d in deliveries(webhooks, hook) if d["attempts"] >= 2],
                             message="a second attempt after the first timed out")
    assert retried[0]["status"] == "PENDING" and len(hanging.requests) >= 2
    assert retried[0]["history"][0]["error"] == "no answer within 0.5 s"
    assert retried[0]["history"][0]["status_code"] is None


def test_a_redirect_is_not_followed(webhooks, receivers):
    target = receivers()
    redirecting = receivers(answers=[302, 302], headers={"Location": target.url})
    hook = webhooks.create_webhook({"url": redirecting.url, "events": ["order.paid"]})

    publish("orders", "order.paid", 4, an_order(4, "PAID"))

    wait_until(lambda: deliveries(webhooks, hook, "DELIVERED"), message="delivered on the third try")
    assert target.requests == []
    assert [a["status_code"] for a in deliveries(webhooks, hook)[0]["history"]] == [302, 302, 200]


def test_redelivery_sends_the_same_event_again(webhooks, receivers):
    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["*"]})
    envelope = publish("orders", "order.paid", 8, an_order(8, "PAID"))
    first = wait_until(lambda: deliveries(webhooks, hook, "DELIVERED"), message="first delivery")[0]

    again = webhooks.redeliver(hook["id"], first["id"])

    wait_until(lambda: len(receiver.requests) == 2, message="the redelivery")
    assert again["event_id"] == envelope["event_id"] and again["id"] != first["id"]
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    assert [r["headers"]["X-POS-Event-Id"] for r in receiver.requests] == [envelope["event_id"]] * 2


def test_inactive_and_deleted_webhooks_get_nothing(webhooks, receivers):
    paused, deleted, live = receivers(), receivers(), receivers()
    paused_hook = webhooks.create_webhook({"url": paused.url, "events": ["*"]})
    webhooks.update_webhook(paused_hook["id"], {"active": False})
    deleted_hook = webhooks.create_webhook({"url": deleted.url, "events": ["*"]})
    webhooks.delete_webhook(deleted_hook["id"])
    webhooks.create_webhook({"url": live.url, "events": ["*"]})

    publish("orders", "order.paid", 6, an_order(6, "PAID"))

    wait_until(lambda: live.requests, message="the live webhook's delivery")
    assert paused.requests == [] and deleted.requests == []
    assert deliveries(webhooks, paused_hook) == []


def test_a_stock_low_webhook_fires_when_an_order_takes_a_product_under_its_threshold(
        webhooks, receivers, container_factory):
    inventory_container = container_factory(InventoryService)
    inventory_container.start()
    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["stock.low"]})

    with ServiceRpcClient("inventory") as inventory:
        inventory.set_stock(31, 10, 5)
        inventory.reserve_stock(1001, [{"product_id": 31, "quantity": 6}])

    wait_until(lambda: receiver.requests, message="the stock.low delivery")
    (event,) = receiver.events()
    assert event["event_type"] == "stock.low" and event["source"] == "inventory"
    assert event["data"]["product_id"] == 31 and event["data"]["available"] == 4
    assert verified(receiver.requests[0], hook["secret"])


def test_two_replicas_deliver_each_event_once_in_order(webhooks, receivers, container_factory):
    container_factory(WebhooksService).start()  # a second replica on the same broker and database
    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["*"]})

    sent = [publish("orders", "order.status_changed", 77, an_order(77, f"S{n}"))["event_id"] for n in range(12)]

    wait_until(lambda: len(deliveries(webhooks, hook, "DELIVERED")) == 12, message="twelve deliveries")
    assert [request["headers"]["X-POS-Event-Id"] for request in receiver.requests] == sent


def test_an_https_receiver_whose_certificate_is_not_trusted_gets_nothing(webhooks, receivers, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    receiver = receivers(tls=(str(cert), str(key)))
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.paid"]})

    publish("orders", "order.paid", 15, an_order(15, "PAID"))

    failed = wait_until(lambda: [d for d in deliveries(webhooks, hook) if d["attempts"] >= 2], message="attempts")
    assert "SSL" in failed[0]["last_error"] and "CERTIFICATE_VERIFY_FAILED" in failed[0]["last_error"]
    assert receiver.requests == []  # the body never left: TLS is verified before anything is sent


def test_neither_the_secret_nor_the_customers_address_is_stored_in_clear(webhooks, receivers):
    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.paid"]})
    order = {**an_order(42, "PAID"), "shipping_address": {"name": "Zoë Ñandú-Quartermaine", "line1": "77 Elmwood Row"}}

    publish("orders", "order.paid", 42, order)

    wait_until(lambda: [d["status"] for d in deliveries(webhooks, hook)] == ["DELIVERED"], message="delivered")
    assert receiver.events()[0]["data"]["shipping_address"]["line1"] == "77 Elmwood Row"  # sent as it was
    assert_not_stored([config["DB_URIS"]["webhooks:Base"]], hook["secret"], "Elmwood Row", "Quartermaine")
