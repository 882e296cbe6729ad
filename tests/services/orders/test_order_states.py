"""The order's state machine on plain objects: every legal step, every illegal one refused, and what each owes."""

import pytest

from common.errors import Conflict
from schemas.orders import OrderStatus, PaymentStatus
from services.orders.models import RESERVING, TRANSITIONS, Order, PaymentAction, StockAction

ALL = (RESERVING, *OrderStatus)


def order_in(status, **fields):
    return Order(**{"id": 7, "status": status, "history": [], "lines": [], "total_cents": 1250, "currency": "USD",
                    "payment_status": PaymentStatus.PENDING, **fields})


def charge(status, reference="pay_1", failure_reason=""):
    return {"order_id": 7, "status": status, "reference": reference, "failure_reason": failure_reason}


STEPS = {
    OrderStatus.PENDING_PAYMENT: lambda order: order.accept("tok_visa"),
    OrderStatus.PAID: lambda order: order.pay("pay_1"),
    OrderStatus.PAYMENT_FAILED: lambda order: order.fail_payment("card_declined"),
    OrderStatus.CANCELLED: lambda order: order.cancel("changed my mind"),
    OrderStatus.SHIPPED: lambda order: order.ship(),
    OrderStatus.DELIVERED: lambda order: order.deliver(),
}


@pytest.mark.parametrize("start", ALL)
@pytest.mark.parametrize("target", list(STEPS))
def test_each_step_is_allowed_exactly_where_the_contract_says(start, target):
    order = order_in(start)
    if target in TRANSITIONS.get(start, ()):
        assert STEPS[target](order) is not None
        assert order.status == target and order.history[-1].status == target
    elif target == OrderStatus.CANCELLED and start == OrderStatus.CANCELLED:
        assert STEPS[target](order) is None  # a repeat, not an error
    else:
        with pytest.raises(Conflict) as refused:
            STEPS[target](order)
        assert refused.value.code == "illegal_transition"
        assert refused.value.details == {"from": start, "to": target}
        assert order.status == start and order.history == []


def test_the_contract_paths():
    assert TRANSITIONS == {
        RESERVING: (OrderStatus.PENDING_PAYMENT,),
        OrderStatus.PENDING_PAYMENT: (OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED),
        OrderStatus.PAID: (OrderStatus.SHIPPED, OrderStatus.CANCELLED),
        OrderStatus.SHIPPED: (OrderStatus.DELIVERED,),
    }


def test_each_step_records_its_event_and_what_it_owes():
    order = order_in(RESERVING)
    assert order.accept("tok_visa") == "order.created" and order.payment_token == "tok_visa"
    assert order.pay("pay_9") == "order.paid"
    assert (order.payment_status, order.payment_reference, order.stock_action, order.payment_token) == (
        PaymentStatus.AUTHORIZED, "pay_9", StockAction.COMMIT, None)
    assert order.ship() == "order.status_changed" and order.payment_action == PaymentAction.CAPTURE
    assert order.deliver() == "order.status_changed"
    assert [change.status for change in order.history] == ["PENDING_PAYMENT", "PAID", "SHIPPED", "DELIVERED"]


def test_a_cancelled_order_owes_its_stock_and_its_money_back_and_forgets_the_token():
    order = order_in(OrderStatus.PENDING_PAYMENT, payment_token="tok_visa")
    assert order.cancel("too slow") == "order.cancelled"
    assert (order.stock_action, order.payment_action, order.payment_token) == (
        StockAction.RELEASE, PaymentAction.RELEASE, None)
    assert order.history[-1].reason == "too slow"


@pytest.mark.parametrize(("answer", "status", "payment_status", "reason"), [
    (charge("authorized"), OrderStatus.PAID, PaymentStatus.AUTHORIZED, None),
    (charge("captured"), OrderStatus.PAID, PaymentStatus.AUTHORIZED, None),
    (charge("declined", failure_reason="card_declined"), OrderStatus.PAYMENT_FAILED, PaymentStatus.FAILED,
     "card_declined"),
    (charge("voided", reference=""), OrderStatus.PAYMENT_FAILED, PaymentStatus.FAILED, "voided"),
])
def test_the_providers_answer_settles_a_waiting_order(answer, status, payment_status, reason):
    order = order_in(OrderStatus.PENDING_PAYMENT, payment_token="tok_x")
    event = order.record_authorization(answer)
    assert (order.status, order.payment_status, order.payment_failure_reason) == (status, payment_status, reason)
    assert event == ("order.paid" if status == OrderStatus.PAID else "order.payment_failed")
    assert order.payment_token is None
    assert order.stock_action == (StockAction.COMMIT if status == OrderStatus.PAID else StockAction.RELEASE)


@pytest.mark.parametrize("status", [OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED])
def test_a_late_charge_of_an_order_that_stopped_waiting_is_owed_back(status):
    order = order_in(status)
    assert order.record_authorization(charge("authorized")) is None
    assert order.status == status and order.payment_action == PaymentAction.RELEASE


def test_a_late_answer_changes_nothing_once_paid_or_refunded():
    paid = order_in(OrderStatus.PAID, payment_status=PaymentStatus.AUTHORIZED)
    assert paid.record_authorization(charge("declined")) is None and paid.status == OrderStatus.PAID
    refunded = order_in(OrderStatus.CANCELLED, payment_status=PaymentStatus.REFUNDED)
    assert refunded.record_authorization(charge("authorized")) is None and refunded.payment_action is None


@pytest.mark.parametrize(("payment", "status", "reason", "release"), [
    (None, OrderStatus.PAYMENT_FAILED, "payment_timeout", True),
    (charge("authorized"), OrderStatus.PAID, None, False),
    (charge("declined", failure_reason="insufficient_funds"), OrderStatus.PAYMENT_FAILED, "insufficient_funds", False),
    (charge("voided"), OrderStatus.PAYMENT_FAILED, "payment_timeout", False),
])
def test_an_overdue_order_is_resolved_from_what_the_provider_holds(payment, status, reason, release):
    order = order_in(OrderStatus.PENDING_PAYMENT, payment_token="tok_timeout")
    order.resolve_overdue(payment)
    assert (order.status, order.payment_failure_reason, order.payment_token) == (status, reason, None)
    assert (order.payment_action == PaymentAction.RELEASE) is release


def test_an_overdue_check_leaves_an_order_that_moved_on_alone():
    order = order_in(OrderStatus.PAID)
    assert order.resolve_overdue(None) is None and order.status == OrderStatus.PAID


@pytest.mark.parametrize(("answer", "payment_status"), [
    ("refunded", PaymentStatus.REFUNDED), ("voided", PaymentStatus.VOIDED), ("declined", PaymentStatus.FAILED)])
def test_a_release_records_what_is_left_of_the_payment(answer, payment_status):
    order = order_in(OrderStatus.CANCELLED, payment_action=PaymentAction.RELEASE)
    order.record_release(charge(answer))
    assert (order.payment_status, order.payment_action) == (payment_status, None)


def test_a_capture_marks_an_authorised_payment_captured_and_nothing_else():
    order = order_in(OrderStatus.SHIPPED, payment_action=PaymentAction.CAPTURE, payment_status=PaymentStatus.AUTHORIZED)
    order.record_capture(charge("captured"))
    assert (order.payment_status, order.payment_action) == (PaymentStatus.CAPTURED, None)
    refunded = order_in(OrderStatus.SHIPPED, payment_action=PaymentAction.CAPTURE,
                        payment_status=PaymentStatus.REFUNDED)
    refunded.record_capture(None)  # nothing left to capture
    assert (refunded.payment_status, refunded.payment_action) == (PaymentStatus.REFUNDED, None)


def test_the_admin_can_only_step_along_the_shipping_path():
    order = order_in(OrderStatus.PAID)
    with pytest.raises(Conflict):
        order.advance_to(OrderStatus.CANCELLED)  # cancelling is its own command
    assert order.advance_to(OrderStatus.SHIPPED) == "order.status_changed"
    with pytest.raises(Conflict):
        order.advance_to(OrderStatus.SHIPPED)


def test_only_a_waiting_order_with_a_token_asks_for_an_authorisation():
    waiting = order_in(OrderStatus.PENDING_PAYMENT, payment_token="tok_visa")
    assert waiting.payment_request() == {"order_id": 7, "amount": "12.50", "currency": "USD", "token": "tok_visa"}
    assert order_in(OrderStatus.PENDING_PAYMENT).payment_request() is None
    assert order_in(OrderStatus.CANCELLED, payment_token="tok_visa").payment_request() is None
