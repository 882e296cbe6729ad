"""The payments service over real RPC against the real broker and the real gRPC provider (a subprocess it may kill)."""

import json

import pytest
from kombu import Connection
from nameko import config
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient

from bridge.kafka_shards import declare_shards, shard_queues
from bridge.payments import PaymentsService
from common.errors import Conflict, DependencyUnavailable
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


def authorize(rpc, order_id, token, total="25.00"):
    return rpc.authorize_payment(order_id, total, "USD", token)


def events_for(order_id):
    return [e for e in received if e["aggregate_id"] == str(order_id)]


@pytest.fixture
def rpc(payments):
    with ServiceRpcClient("payments", context_data={"correlation_id": "corr-1"}) as client:
        yield client


def test_every_sandbox_token_gets_its_answer_and_the_matching_payment_event(rpc):
    tokens = {1: "tok_visa", 2: "tok_mastercard", 3: "tok_chargeDeclined", 4: "tok_insufficientFunds",
              5: "tok_bogus"}
    answers = {order_id: authorize(rpc, order_id, token) for order_id, token in tokens.items()}
    answers[6] = authorize(rpc, 6, "tok_visa", total="10000.01")
    wait_until(lambda: len(received) >= 6, message="six payment events")

    assert {order_id: (a["status"], a["failure_reason"]) for order_id, a in answers.items()} == {
        1: ("authorized", ""), 2: ("authorized", ""), 3: ("declined", "card_declined"),
        4: ("declined", "insufficient_funds"), 5: ("declined", "invalid_token"), 6: ("declined", "amount_too_large")}
    outcome = {int(e["aggregate_id"]): (e["event_type"], e["data"]["failure_reason"]) for e in received}
    assert outcome == {1: ("payment.authorized", ""), 2: ("payment.authorized", ""),
                       3: ("payment.failed", "card_declined"), 4: ("payment.failed", "insufficient_funds"),
                       5: ("payment.failed", "invalid_token"), 6: ("payment.failed", "amount_too_large")}
    authorized = events_for(1)[0]
    assert authorized["source"] == "payments" and authorized["correlation_id"] == "corr-1"
    assert authorized["data"]["reference"].startswith("pay_") and authorized["data"]["amount"] == "25.00"
    assert "token" not in authorized["data"] and "payment_token" not in authorized["data"]
    assert events_for(3)[0]["data"]["reason"] == "card_declined"
    for envelope in received:
        validate(envelope)  # the Kafka contract (schemas/events)


def test_a_provider_that_does_not_answer_in_time_is_unavailable_and_states_nothing(rpc):
    with pytest.raises(DependencyUnavailable) as slow:
        authorize(rpc, 10, "tok_timeout")
    assert slow.value.code == "payment_provider_unavailable"
    authorize(rpc, 11, "tok_visa")
    wait_until(lambda: events_for(11), message="the next order's payment")
    assert rpc.get_payment(10) is None
    assert rpc.get_payment(11)["status"] == "authorized"
    assert events_for(10) == []


def test_a_repeated_authorisation_gets_the_same_answer_as_the_same_event(rpc):
    first = authorize(rpc, 20, "tok_visa")
    second = authorize(rpc, 20, "tok_chargeDeclined")
    wait_until(lambda: len(events_for(20)) == 2, message="two answers")

    assert first == second and first["status"] == "authorized"
    one, again = events_for(20)
    assert one["event_type"] == again["event_type"] == "payment.authorized"
    assert one["event_id"] == again["event_id"]  # a consumer that drops repeats by event_id sees it once


def test_refund_of_a_charged_payment_dispatches_payment_refunded(rpc):
    authorize(rpc, 30, "tok_visa")
    refunded = rpc.refund_payment(30)
    assert rpc.refund_payment(30)["status"] == "refunded"
    never_charged = rpc.refund_payment(31)
    assert refunded["status"] == "refunded"
    assert never_charged["status"] == "voided"
    wait_until(lambda: len(events_for(30)) == 2, message="payment.refunded")
    assert events_for(30)[1]["event_type"] == "payment.refunded"
    assert events_for(31) == []


def test_capture_takes_an_authorised_payment_once_and_refuses_a_refunded_one(rpc):
    authorize(rpc, 50, "tok_visa")
    authorize(rpc, 51, "tok_visa")
    rpc.refund_payment(51)

    captured = rpc.capture_payment(50)
    assert rpc.capture_payment(50) == captured  # a repeat captures nothing twice
    with pytest.raises(Conflict) as refunded:
        rpc.capture_payment(51)

    assert captured["status"] == "captured" and refunded.value.code == "payment_state_conflict"
    wait_until(lambda: len(events_for(50)) == 3, message="payment.captured twice")
    capture_events = [e for e in events_for(50) if e["event_type"] == "payment.captured"]
    assert len({e["event_id"] for e in capture_events}) == 1
    assert capture_events[0]["data"]["reference"] == events_for(50)[0]["data"]["reference"]
    assert [e["event_type"] for e in events_for(51)] == ["payment.authorized", "payment.refunded"]
    assert rpc.get_payment(50)["status"] == "captured"
    validate(capture_events[0])


def test_the_service_survives_the_provider_dying_and_coming_back(rpc, payment_provider):  # noqa: F811
    authorize(rpc, 40, "tok_visa")
    payment_provider.kill()

    with pytest.raises(DependencyUnavailable):
        authorize(rpc, 41, "tok_visa")
    with pytest.raises(DependencyUnavailable):
        rpc.get_payment(40)
    payment_provider.start()

    assert rpc.get_payment(40)["status"] == "authorized"
    assert rpc.get_payment(41) is None  # nothing was charged while it was down
    assert authorize(rpc, 42, "tok_visa")["status"] == "authorized"


def test_payment_events_shard_by_their_order_like_order_events(rpc):
    shards = 4
    with Connection(config["AMQP_URI"]) as connection:
        declare_shards(connection, ["payments"], shards=shards)  # the Kafka bridge's shards, with no bridge reading
        orders = range(100, 124)
        for order_id in orders:
            authorize(rpc, order_id, "tok_visa")
            rpc.capture_payment(order_id)
        wait_until(lambda: len(received) >= 2 * len(orders), message="the payment events")
        shard_of = {}
        channel = connection.default_channel
        for shard, queue in enumerate(shard_queues(shards)):
            while (message := channel.basic_get(queue.name, no_ack=True)) is not None:
                envelope = json.loads(message.body)
                assert message.headers["aggregate_id"] == envelope["aggregate_id"]
                assert message.headers["event_type"] == envelope["event_type"]
                assert message.headers["nameko.correlation_id"] == "corr-1"
                shard_of.setdefault(envelope["aggregate_id"], set()).add(shard)
    assert set(shard_of) == {str(order_id) for order_id in orders}  # every one of them reached a shard
    assert all(len(found) == 1 for found in shard_of.values())  # an order's events stay on one shard
    assert len(set().union(*shard_of.values())) > 1  # and the orders spread over the shards
