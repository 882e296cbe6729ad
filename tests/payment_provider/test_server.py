"""The sandbox provider over real gRPC: every token's outcome, idempotency per key, deadlines, state changes."""

import grpc
import pytest

from payment_provider import protos

pb, pb_grpc = protos()
AUTHORIZED, DECLINED = pb.PaymentStatus.Value("AUTHORIZED"), pb.PaymentStatus.Value("DECLINED")


@pytest.fixture
def stub(payment_provider):
    channel = grpc.insecure_channel(payment_provider.address)
    yield pb_grpc.PaymentProviderStub(channel)
    channel.close()


def authorize(stub, key, token="tok_visa", amount="19.99", timeout=5):
    return stub.Authorize(pb.AuthorizeRequest(idempotency_key=key, amount=amount, currency="USD", token=token),
                          timeout=timeout)


def key(text):
    return pb.PaymentRequest(idempotency_key=text)


@pytest.mark.parametrize("token, status, reason", [
    ("tok_visa", "AUTHORIZED", ""),
    ("tok_mastercard", "AUTHORIZED", ""),
    ("tok_chargeDeclined", "DECLINED", "card_declined"),
    ("tok_insufficientFunds", "DECLINED", "insufficient_funds"),
    ("tok_unknown", "DECLINED", "invalid_token"),
])
def test_each_sandbox_token_has_its_outcome(stub, token, status, reason):
    payment = authorize(stub, f"order-{token}", token)
    assert pb.PaymentStatus.Name(payment.status) == status
    assert payment.failure_reason == reason
    assert payment.reference.startswith("pay_") and payment.amount == "19.99" and payment.currency == "USD"
    assert stub.GetPayment(key(f"order-{token}"), timeout=5) == payment


def test_totals_above_ten_thousand_are_declined_even_with_a_good_card(stub):
    assert authorize(stub, "big", amount="10000.01").failure_reason == "amount_too_large"
    assert authorize(stub, "limit", amount="10000.00").status == AUTHORIZED


def test_tok_timeout_never_answers_before_the_deadline(stub):
    with pytest.raises(grpc.RpcError) as caught:
        authorize(stub, "slow", "tok_timeout", timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetPayment(key("slow"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_same_key_gives_the_same_payment_and_never_charges_twice(stub):
    first = authorize(stub, "order-1", "tok_visa")
    again = authorize(stub, "order-1", "tok_chargeDeclined", amount="5.00")
    assert again == first
    assert authorize(stub, "order-2").reference != first.reference


def test_capture_refund_and_void_follow_the_payment_states(stub):
    authorize(stub, "paid")
    assert pb.PaymentStatus.Name(stub.Capture(key("paid"), timeout=5).status) == "CAPTURED"
    assert pb.PaymentStatus.Name(stub.Refund(key("paid"), timeout=5).status) == "REFUNDED"
    assert pb.PaymentStatus.Name(stub.Refund(key("paid"), timeout=5).status) == "REFUNDED"
    with pytest.raises(grpc.RpcError) as caught:
        stub.Capture(key("paid"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    authorize(stub, "held")
    assert pb.PaymentStatus.Name(stub.Void(key("held"), timeout=5).status) == "VOIDED"
    with pytest.raises(grpc.RpcError) as never_paid:
        stub.Refund(key("nothing"), timeout=5)
    assert never_paid.value.code() == grpc.StatusCode.NOT_FOUND


def test_voiding_an_unknown_key_fences_off_a_late_authorisation(stub):
    assert pb.PaymentStatus.Name(stub.Void(key("late"), timeout=5).status) == "VOIDED"
    assert pb.PaymentStatus.Name(authorize(stub, "late").status) == "VOIDED"


def test_bad_requests_are_invalid_arguments(stub):
    for request in (dict(idempotency_key="", amount="1.00"), dict(idempotency_key="k", amount="1.001"),
                    dict(idempotency_key="k", amount="-1"), dict(idempotency_key="k", amount="abc")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Authorize(pb.AuthorizeRequest(currency="USD", token="tok_visa", **request), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_payments_survive_a_killed_provider(payment_provider, stub):
    first = authorize(stub, "durable")
    payment_provider.kill()
    payment_provider.start()
    channel = grpc.insecure_channel(payment_provider.address)
    try:
        assert pb_grpc.PaymentProviderStub(channel).GetPayment(key("durable"), timeout=5) == first
    finally:
        channel.close()
