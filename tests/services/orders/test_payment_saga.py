"""The payment saga end to end: every sandbox token's outcome, the reconciler, and a provider killed mid-saga."""

import json

import eventlet
from sqlalchemy import select

from bridge.payments import PaymentsService
from common.db import make_engine
from common.errors import DependencyUnavailable
from common.rpc import rpc
from schemas.payments import PROVIDER_UNAVAILABLE
from services.orders.models import Order
from tests.services.orders.conftest import authorize_at_the_provider, outbox_events, provider_status, start
from tests.support import wait_until


class PaymentsWithoutSaga(PaymentsService):
    """The payments service whose authorisations never come back: nothing reports what the provider did."""

    @rpc
    def authorize_payment(self, order_id, amount, currency, token):
        raise DependencyUnavailable("the provider did not answer in time", code=PROVIDER_UNAVAILABLE)


def settled_stock(saga, product_id, on_hand):
    """Wait until nothing is held for orders any more, then check what is on the shelf."""
    stock = wait_until(lambda: (s := saga.stock(product_id))["reserved"] == 0 and s, message="stock settled")
    assert stock["on_hand"] == on_hand
    return stock


def test_a_good_card_pays_the_order_and_commits_its_stock(saga):
    widget = saga.product(stock=10, price="5.00")
    order = saga.order([{"product_id": widget["id"], "quantity": 3}], token="tok_visa")

    paid = saga.wait_for_status(order["id"], "PAID")

    assert paid["payment"]["status"] == "authorized" and paid["payment"]["reference"].startswith("pay_")
    assert paid["invoice_url"] == f"https://shop.example/orders/{order['id']}/invoice"
    assert [h["status"] for h in paid["history"]] == ["PENDING_PAYMENT", "PAID"]
    settled_stock(saga, widget["id"], on_hand=7)


def test_the_payment_token_is_at_rest_only_until_the_provider_has_answered(saga, db_uris):
    widget = saga.product(stock=10)
    paid = saga.order([{"product_id": widget["id"], "quantity": 1}], token="tok_mastercard")
    waiting = saga.order([{"product_id": widget["id"], "quantity": 1}], token="tok_timeout")
    saga.wait_for_status(paid["id"], "PAID")

    assert stored_tokens(db_uris) == {paid["id"]: None, waiting["id"]: "tok_timeout"}
    saga.wait_for_status(waiting["id"], "PAYMENT_FAILED")
    assert stored_tokens(db_uris) == {paid["id"]: None, waiting["id"]: None}
    assert not [e for e in outbox_events(db_uris) if "tok_" in json.dumps(e)]


def stored_tokens(db_uris):
    engine = make_engine(db_uris["orders:Base"])
    with engine.connect() as connection:
        tokens = dict(connection.execute(select(Order.id, Order.payment_token)).all())
    engine.dispose()
    return tokens


def test_every_sandbox_token_has_its_outcome(saga):
    widget = saga.product(stock=100, price="10.00")
    luxury = saga.product(stock=5, price="10000.01")
    tokens = {"tok_visa": ("PAID", None), "tok_mastercard": ("PAID", None),
              "tok_chargeDeclined": ("PAYMENT_FAILED", "card_declined"),
              "tok_insufficientFunds": ("PAYMENT_FAILED", "insufficient_funds"),
              "tok_whatever": ("PAYMENT_FAILED", "invalid_token"),
              "tok_timeout": ("PAYMENT_FAILED", "payment_timeout")}
    orders = {token: saga.order([{"product_id": widget["id"], "quantity": 1}], token=token) for token in tokens}
    too_large = saga.order([{"product_id": luxury["id"], "quantity": 1}], token="tok_visa")

    for token, (status, reason) in tokens.items():
        order = saga.wait_for_status(orders[token]["id"], "PAID", "PAYMENT_FAILED")
        assert (order["status"], order["payment"].get("failure_reason")) == (status, reason), token
        if reason:
            assert order["history"][-1] == {"status": "PAYMENT_FAILED", "at": order["history"][-1]["at"],
                                            "reason": reason}
            assert order["invoice_url"] is None
    refused = saga.wait_for_status(too_large["id"], "PAYMENT_FAILED")
    assert refused["payment"]["failure_reason"] == "amount_too_large"
    settled_stock(saga, widget["id"], on_hand=98)
    settled_stock(saga, luxury["id"], on_hand=5)


def test_an_authorisation_nobody_reported_ends_paid_not_failed(saga, container_factory):
    saga.containers["payments"].stop()
    start(container_factory, PaymentsWithoutSaga)
    widget = saga.product(stock=4)
    order = saga.order([{"product_id": widget["id"], "quantity": 2}], token="tok_visa")
    authorize_at_the_provider(saga, order)

    paid = saga.wait_for_status(order["id"], "PAID", "PAYMENT_FAILED")

    assert paid["status"] == "PAID" and paid["payment"]["status"] == "authorized"
    settled_stock(saga, widget["id"], on_hand=2)


def test_an_authorisation_hidden_by_an_outage_is_released_once_the_provider_is_back(saga, container_factory):
    saga.containers["payments"].stop()
    start(container_factory, PaymentsWithoutSaga)
    widget = saga.product(stock=4)
    order = saga.order([{"product_id": widget["id"], "quantity": 1}], token="tok_visa")
    authorize_at_the_provider(saga, order)  # it held the money, but nobody heard
    saga.provider.kill()

    failed = saga.wait_for_status(order["id"], "PAID", "PAYMENT_FAILED")
    saga.provider.start()

    assert (failed["status"], failed["payment"]["failure_reason"]) == ("PAYMENT_FAILED", "payment_timeout")
    wait_until(lambda: saga.rpc.orders.get_order(order["id"])["payment"]["status"] == "refunded", timeout=20,
               message="the hidden authorisation released")
    assert provider_status(saga, order["id"]) == "REFUNDED"
    settled_stock(saga, widget["id"], on_hand=4)


def test_provider_killed_mid_saga_leaves_no_order_stuck_and_no_stock_held(saga):
    widget = saga.product(stock=40, price="3.00")

    def place(i):
        return saga.order([{"product_id": widget["id"], "quantity": 2}], customer_id=i + 1)

    first = [place(i) for i in range(5)]
    saga.wait_for_status(first[0]["id"], "PAID", "PAYMENT_FAILED")
    saga.provider.kill()
    during = [place(i) for i in range(5, 10)]
    eventlet.sleep(0.5)
    saga.provider.start()
    after = [place(i) for i in range(10, 12)]

    finals = [saga.wait_for_status(o["id"], "PAID", "PAYMENT_FAILED") for o in first + during + after]
    paid = [o for o in finals if o["status"] == "PAID"]
    assert all(o["payment"]["failure_reason"] == "payment_timeout" for o in finals if o["status"] != "PAID")
    assert {o["id"] for o in after} <= {o["id"] for o in paid}
    settled_stock(saga, widget["id"], on_hand=40 - 2 * len(paid))


AUTHORIZED_AFTER = 3.0  # seconds: past FAST_SAGA's PAYMENT_PENDING_TIMEOUT_SECONDS (2), so the reconciler looks first
LOOK_LINGERS = 2.0


class AuthorisationDuringTheLook(PaymentsService):
    """The payments service of a race: the saga's authorisation reaches the provider once the order is overdue, while
    the reconciler's look (which found nothing there) is still on its way back."""

    @rpc
    def authorize_payment(self, order_id, amount, currency, token):
        eventlet.sleep(AUTHORIZED_AFTER)
        return super().authorize_payment(order_id, amount, currency, token)

    @rpc
    def get_payment(self, order_id):
        payment = super().get_payment(order_id)
        if payment is None:
            eventlet.sleep(LOOK_LINGERS)
        return payment


def test_an_authorisation_landing_while_the_reconciler_looks_leaves_the_paid_order_charged(saga, container_factory):
    saga.containers["payments"].stop()
    start(container_factory, AuthorisationDuringTheLook)
    widget = saga.product(stock=4)
    order = saga.order([{"product_id": widget["id"], "quantity": 1}], token="tok_visa")

    paid = saga.wait_for_status(order["id"], "PAID", "PAYMENT_FAILED")
    eventlet.sleep(LOOK_LINGERS + 1)  # whatever the reconciler did with its look is done

    assert paid["status"] == "PAID" and saga.rpc.orders.get_order(order["id"])["status"] == "PAID"
    assert provider_status(saga, order["id"]) == "AUTHORIZED"  # not voided behind the paid order's back
    settled_stock(saga, widget["id"], on_hand=3)
