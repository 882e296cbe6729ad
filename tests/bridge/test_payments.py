"""The payments service against the real broker and the real gRPC provider (a subprocess it may kill)."""

import eventlet
import pytest
from nameko import config
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter

from bridge.payments import PaymentsService
from common.errors import DependencyUnavailable
from common.events import make_envelope
from schemas.events import validate
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
from tests.support import wait_until

received = []


class PaymentRecorder:
    name = "payment_recorder"

    @event_handler("payments", "payment.authorized")
    @event_handler("payments", "payment.failed")
    @event_handler("payments", "payment.refunded")
    @event_handler("payments", "payment.captured")
    def record(self, envelope):
        received.append(envelope)


@pytest.fixture
def payments(rabbit_config, payment_provider, container_factory):  # noqa: F811
    received.clear()
    with config.patch({"PAYMENT_PROVIDER_ADDRESS": payment_provider.address, "PAYMENT_TIMEOUT_SECONDS": 1,
                       "serializer": "json"}):
        container_factory(PaymentRecorder).start()
        container = container_factory(PaymentsService)
        container.start()
        yield container


def order_created(order_id, token, total="25.00"):
    data = {"id": order_id, "customer_id": 7, "total": total, "currency": "USD", "payment_token": token}
    event_dispatcher()("orders", "order.created",
                       make_envelope("order.created", order_id, data, source="orders", correlation_id="corr-1"))


def events_for(order_id):
    return [e for e in received if e["aggregate_id"] == str(order_id)]


def test_every_sandbox_token_becomes_the_matching_payment_event(payments):
    tokens = {1: "tok_visa", 2: "tok_mastercard", 3: "tok_chargeDeclined", 4: "tok_insufficientFunds",
              5: "tok_bogus"}
    for order_id, token in tokens.items():
        order_created(order_id, token)
    order_created(6, "tok_visa", total="10000.01")
    wait_until(lambda: len(received) >= 6, message="six payment events")

    outcome = {int(e["aggregate_id"]): (e["event_type"], e["data"]["failure_reason"]) for e in received}
    assert outcome == {1: ("payment.authorized", ""), 2: ("payment.authorized", ""),
                       3: ("payment.failed", "card_declined"), 4: ("payment.failed", "insufficient_funds"),
                       5: ("payment.failed", "invalid_token"), 6: ("payment.failed", "amount_too_large")}
    authorized = events_for(1)[0]
    assert authorized["source"] == "payments" and authorized["correlation_id"] == "corr-1"
    assert authorized["data"]["reference"].startswith("pay_") and authorized["data"]["amount"] == "25.00"
    assert "payment_token" not in authorized["data"]
    assert events_for(3)[0]["data"]["reason"] == "card_declined"
    for envelope in received:
        validate(envelope)  # the Kafka contract (schemas/events)


def test_a_timeout_gets_no_verdict_and_is_left_for_the_reconciler(payments):
    with entrypoint_waiter(payments, "authorize_payment", timeout=10):
        order_created(10, "tok_timeout")
    order_created(11, "tok_visa")
    wait_until(lambda: events_for(11), message="the next order's payment")
    with ServiceRpcClient("payments") as rpc:
        assert rpc.get_payment(10) is None
        assert rpc.get_payment(11)["status"] == "authorized"
    assert events_for(10) == []


def test_a_redelivered_order_gets_the_same_answer(payments):
    order_created(20, "tok_visa")
    wait_until(lambda: events_for(20), message="the first answer")  # both at once would race for the key
    order_created(20, "tok_chargeDeclined")
    wait_until(lambda: len(events_for(20)) == 2, message="two answers")
    first, second = events_for(20)
    assert first["event_type"] == second["event_type"] == "payment.authorized"
    assert first["data"]["reference"] == second["data"]["reference"]


def test_refund_of_a_charged_payment_dispatches_payment_refunded(payments):
    order_created(30, "tok_visa")
    wait_until(lambda: events_for(30), message="authorisation")
    with ServiceRpcClient("payments") as rpc:
        refunded = rpc.refund_payment(30)
        assert rpc.refund_payment(30)["status"] == "refunded"
        never_charged = rpc.refund_payment(31)
    assert refunded["status"] == "refunded"
    assert never_charged["status"] == "voided"
    wait_until(lambda: len(events_for(30)) == 2, message="payment.refunded")
    assert events_for(30)[1]["event_type"] == "payment.refunded"
    assert events_for(31) == []


def order_status_changed(order_id, status):
    event_dispatcher()("orders", "order.status_changed", make_envelope(
        "order.status_changed", order_id, {"id": order_id, "status": status}, source="orders", correlation_id="c-2"))


def test_shipping_captures_the_authorised_payment_once_and_nothing_else_does(payments):
    order_created(50, "tok_visa")
    order_created(51, "tok_visa")
    wait_until(lambda: events_for(50) and events_for(51), message="authorisations")
    with ServiceRpcClient("payments") as rpc:
        rpc.refund_payment(51)
    for status in ("SHIPPED", "DELIVERED"):
        with entrypoint_waiter(payments, "capture_payment", timeout=10):
            order_status_changed(50, status)
    with entrypoint_waiter(payments, "capture_payment", timeout=10):
        order_status_changed(51, "SHIPPED")  # refunded meanwhile: nothing to capture
    with entrypoint_waiter(payments, "capture_payment", timeout=10):
        order_status_changed(50, "SHIPPED")  # a repeat captures nothing twice

    captured = [e for e in events_for(50) if e["event_type"] == "payment.captured"]
    assert len(captured) == 2 and {e["data"]["status"] for e in captured} == {"captured"}
    assert captured[0]["data"]["reference"] == events_for(50)[0]["data"]["reference"]
    assert [e["event_type"] for e in events_for(51)] == ["payment.authorized", "payment.refunded"]
    with ServiceRpcClient("payments") as rpc:
        assert rpc.get_payment(50)["status"] == "captured"
        assert rpc.get_payment(51)["status"] == "refunded"
    validate(captured[0])


def test_a_capture_the_provider_cannot_answer_is_retried(payments, payment_provider):  # noqa: F811
    order_created(60, "tok_visa")
    wait_until(lambda: events_for(60), message="authorisation")
    payment_provider.kill()
    order_status_changed(60, "SHIPPED")
    eventlet.sleep(1.5)  # a delivery or two fail against the dead provider and go back to the queue
    payment_provider.start()

    wait_until(lambda: len(events_for(60)) == 2, timeout=20, message="the capture once the provider is back")
    assert events_for(60)[1]["event_type"] == "payment.captured"


def test_the_service_survives_the_provider_dying_and_coming_back(payments, payment_provider):  # noqa: F811
    order_created(40, "tok_visa")
    wait_until(lambda: events_for(40), message="authorisation")
    payment_provider.kill()

    with entrypoint_waiter(payments, "authorize_payment", timeout=10):
        order_created(41, "tok_visa")
    with ServiceRpcClient("payments") as rpc:
        with pytest.raises(DependencyUnavailable):
            rpc.get_payment(40)
        payment_provider.start()
        assert rpc.get_payment(40)["status"] == "authorized"
        assert rpc.get_payment(41) is None  # its order.created found no provider: nothing was charged
        order_created(42, "tok_visa")
        wait_until(lambda: events_for(42), message="authorisation after the restart")
    assert events_for(41) == []
