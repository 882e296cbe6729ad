"""Two processes of every service (one gateway and one inventory gRPC API: they hold a port) and 200 orders placed
over HTTP from eight threads, half of them cancelled through the API while their payment saga runs — some before
the authorisation, some while it is in flight, some once the order is PAID —, a fifth placed twice at once under one
Idempotency-Key, some cancelled twice at once, a tenth with a declined card. At the end: every order is in a final
state with nothing owed, none charged twice or left charged once cancelled, each email sent once, stock on hand =
start - paid units with nothing reserved, and each order's and payment's events on Kafka once."""

import mailbox
import random
import re
import sqlite3
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pymysql
import pytest
import requests

from tests.system.conftest import ADDRESS, RPC_DEADLINE, System, placed_orders, read_kafka, running, wait

ORDERS = 200
CUSTOMERS = 8
PRODUCTS = 3
START_STOCK = 1000
REPLICAS = dict.fromkeys(("accounts", "products", "inventory", "orders", "notifications", "payments",
                          "kafka_bridge", "webhooks"), 2)
# Both notifications processes' retry timers then compete with the handlers for every new message: the claim decides.
RACE_ENV = {"NOTIFY_RETRY_INTERVAL": "0.5"}
# Seconds between the 201 and the cancel: the authorisation follows the 201 by ~0.1-1 s (outbox, handler, provider).
CANCEL_DELAYS = (0, 0, 0, 0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5)
FINAL = ("PAID", "CANCELLED", "PAYMENT_FAILED")
# What the provider may hold for an order that is not PAID (the customer not charged), and the order's payment
# status that says so.
NOT_CHARGED = {"VOIDED": "voided", "REFUNDED": "refunded", "DECLINED": "failed"}
SUBJECT = re.compile(r"Order #(\d+)(?P<kind> confirmed| cancelled|: your payment did not go through)")
KINDS = {" confirmed": "order_confirmation", " cancelled": "order_cancelled",
         ": your payment did not go through": "payment_failed"}


@dataclass
class Plan:
    auth: dict
    product_id: int
    quantity: int
    token: str
    replayed: bool  # the POST sent twice at once with one Idempotency-Key (a client's retry)
    cancel_after: float | None
    cancels: int  # 2: a double click
    order_id: int | None = None
    answers: list = field(default_factory=list)
    cancel_answers: list = field(default_factory=list)


@pytest.fixture(scope="module")
def system(tmp_path_factory, mariadb):
    yield from running(System(tmp_path_factory.mktemp("system"), mariadb=mariadb, extra_env=RACE_ENV,
                              replicas=REPLICAS))


@pytest.mark.slow
def test_replicas_racing_cancels_against_payments_charge_mail_and_count_stock_once(system, mariadb, admin):
    seed = random.randrange(10**6)
    products = [system.product(admin, START_STOCK)["id"] for _ in range(PRODUCTS)]
    customers = [system.customer() for _ in range(CUSTOMERS)]
    plans = make_plans(random.Random(seed), customers, products)
    run(system, plans)
    context = f"(seed {seed})"

    assert_each_request_placed_one_order(system, plans, customers, context)
    orders = settled(system, admin, mariadb, plans, context)
    assert_cancels_answered(plans, orders, context)
    payments = provider_payments(system)
    assert_money(plans, orders, payments, context)
    assert_stock(system, admin, mariadb, plans, orders, products, context)
    assert_each_email_once(system, orders, context)
    assert_events_once(system, orders, payments, context)
    assert_the_races_happened(plans, orders, payments, context)
    assert system.exited() is None


# --- the traffic --------------------------------------------------------------------------------------------------

def make_plans(rng, customers, products):
    plans = []
    for index in range(ORDERS):
        cancelled = index % 2 == 0
        plans.append(Plan(auth={"Authorization": customers[index % len(customers)].headers["Authorization"]},
                          product_id=rng.choice(products), quantity=rng.randint(1, 3),
                          token="tok_chargeDeclined" if rng.random() < 0.1 else "tok_visa",
                          replayed=rng.random() < 0.2, cancel_after=rng.choice(CANCEL_DELAYS) if cancelled else None,
                          cancels=2 if cancelled and rng.random() < 0.2 else 1))
    return plans


def run(system, plans):
    with ThreadPoolExecutor(32) as cancelling:
        with ThreadPoolExecutor(CUSTOMERS) as placing:
            cancels = [future for futures in placing.map(lambda plan: place(system, plan, cancelling), plans)
                       for future in futures]
        for future in cancels:
            future.result()


def place(system, plan, cancelling):
    """POST the order (twice at once if ``replayed``); then its cancels, each after ``cancel_after`` s."""
    body = {"items": [{"product_id": plan.product_id, "quantity": plan.quantity}], "shipping_address": ADDRESS,
            "payment_token": plan.token}
    headers = {**plan.auth, "Idempotency-Key": f"race-{uuid.uuid4().hex}"}

    def post(_):
        return requests.post(f"{system.base_url}/orders", json=body, headers=headers, timeout=RPC_DEADLINE + 10)

    with ThreadPoolExecutor(2) as pair:
        replies = list(pair.map(post, range(2 if plan.replayed else 1)))
    plan.answers = [(reply.status_code, reply.json().get("id") if reply.status_code in (200, 201) else reply.text)
                    for reply in replies]
    plan.order_id = next((order_id for status, order_id in plan.answers if status == 201), None)
    if plan.cancel_after is None or plan.order_id is None:
        return []
    return [cancelling.submit(cancel, system, plan) for _ in range(plan.cancels)]


def cancel(system, plan):
    time.sleep(plan.cancel_after)
    reply = requests.post(f"{system.base_url}/orders/{plan.order_id}/cancel", json={"reason": "race"},
                          headers=plan.auth, timeout=RPC_DEADLINE + 10)
    answer = reply.json()
    plan.cancel_answers.append((reply.status_code, answer.get("status") or answer.get("error", {}).get("code")))


# --- what the system holds at the end -----------------------------------------------------------------------------

def settled(system, admin, mariadb, plans, context, timeout=90):
    """``{id: order}`` once every order is final and owes nothing to inventory or the provider."""
    deadline = time.monotonic() + timeout
    while True:
        orders = {}
        for page in range(1, ORDERS // 100 + 2):
            reply = admin.get(f"{system.base_url}/orders", params={"page": page, "page_size": 100}, timeout=15)
            orders |= {order["id"]: order for order in reply.json()["items"]}
        stuck = query(mariadb, "pos_orders", "SELECT id, status, stock_action, payment_action FROM orders WHERE status "
                      "NOT IN ('PAID', 'CANCELLED', 'PAYMENT_FAILED') OR stock_action IS NOT NULL "
                      "OR payment_action IS NOT NULL")
        if not stuck and set(orders) == {plan.order_id for plan in plans}:
            return orders
        assert time.monotonic() < deadline, f"orders not final or still owing after {timeout}s {context}: {stuck[:10]}"
        time.sleep(1)


def query(mariadb, database, sql):
    connection = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", password="", database=database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


def provider_payments(system):
    """``{order id: (status, amount, token)}`` from the provider's own store: the money, whatever the shop thinks."""
    connection = sqlite3.connect(system.work_dir / "provider.db")
    try:
        rows = connection.execute("SELECT idempotency_key, status, amount, token FROM payments").fetchall()
    finally:
        connection.close()
    return {int(key): (status, amount, token) for key, status, amount, token in rows}


def was_paid(order):
    return any(change["status"] == "PAID" for change in order["history"])


# --- the rules ----------------------------------------------------------------------------------------------------

def assert_each_request_placed_one_order(system, plans, customers, context):
    """Every POST 201 (its replay 200, naming the same order); the customers have exactly those orders."""
    wrong = [plan.answers for plan in plans if sorted(status for status, _ in plan.answers)
             != ([200, 201] if plan.replayed else [201]) or len({order_id for _, order_id in plan.answers}) != 1]
    assert not wrong, f"{len(wrong)} orders not placed once {context}: {wrong[:5]}"
    assert placed_orders(system, customers) == {plan.order_id for plan in plans}, context


def assert_cancels_answered(plans, orders, context):
    """A cancel answers 200 CANCELLED (and the order stays so) or 409 once the payment failed; nothing else."""
    wrong = []
    for plan in plans:
        final = orders[plan.order_id]["status"]
        for answer in plan.cancel_answers:
            if answer != ((200, "CANCELLED") if final == "CANCELLED" else (409, "illegal_transition")) \
                    or final == "PAID":
                wrong.append((plan.order_id, answer, final))
    assert not wrong, f"cancels answered wrongly {context}: {wrong[:10]}"
    assert sum(len(plan.cancel_answers) for plan in plans) == sum(plan.cancels for plan in plans
                                                                  if plan.cancel_after is not None)


def assert_money(plans, orders, payments, context):
    """The provider holds a charge of the order's total for each PAID order and none for any other; each order's
    payment status says what the provider did; nothing is held under a key that is no order."""
    wrong = []
    for plan in plans:
        order = orders[plan.order_id]
        status, amount, _ = payments.get(plan.order_id, (None, None, None))
        if order["status"] == "PAID":
            ok = status == "AUTHORIZED" and amount == order["total"] and order["payment"]["status"] == "authorized"
            ok = ok and plan.cancel_after is None and plan.token == "tok_visa"
        elif order["status"] == "CANCELLED":
            ok = status in NOT_CHARGED and order["payment"]["status"] == NOT_CHARGED[status]
        else:
            ok = status in NOT_CHARGED
            ok = ok and (plan.token != "tok_visa" or order["payment"].get("failure_reason") == "payment_timeout")
        if not ok:
            wrong.append((plan.order_id, plan.token, plan.cancel_after, order["status"], order["payment"], status,
                          amount, order["total"]))
    assert not wrong, f"{len(wrong)} orders whose money is wrong {context}: {wrong[:10]}"
    assert set(payments) <= set(orders), f"provider keys of no order {context}: {sorted(set(payments) - set(orders))}"


def assert_stock(system, admin, mariadb, plans, orders, products, context):
    """On hand = start - units of PAID orders, nothing reserved; each PAID order's reservation committed, every
    other's released."""
    for product_id in products:
        paid = sum(plan.quantity for plan in plans
                   if plan.product_id == product_id and orders[plan.order_id]["status"] == "PAID")
        stock = system.stock(admin, product_id)
        assert (stock["on_hand"], stock["reserved"]) == (START_STOCK - paid, 0), (product_id, stock, paid, context)
    reservations = dict(query(mariadb, "pos_inventory", "SELECT order_id, status FROM reservations"))
    wrong = [(order_id, order["status"], reservations.get(str(order_id))) for order_id, order in orders.items()
             if reservations.get(str(order_id)) != ("COMMITTED" if order["status"] == "PAID" else "RELEASED")]
    assert not wrong, f"reservations out of step with their orders {context}: {wrong[:10]}"


def assert_each_email_once(system, orders, context):
    """One confirmation per order that was ever PAID, one cancellation per CANCELLED, one failure per
    PAYMENT_FAILED, as delivered (the Maildir); counted again after the retry timers had time to send a repeat."""
    wanted = Counter({(order_id, kind): 1 for order_id, order in orders.items() for kind in
                      (("order_confirmation",) if was_paid(order) else ())
                      + {"CANCELLED": ("order_cancelled",), "PAYMENT_FAILED": ("payment_failed",)}.get(
                          order["status"], ())})
    wait(lambda: not wanted - delivered(system), 60, "every email")
    time.sleep(3)
    sent = delivered(system)
    assert sent == wanted, (f"emails not sent once {context}: twice or more "
                            f"{sorted(k for k, n in sent.items() if n > 1)[:10]}, unwanted "
                            f"{sorted(set(sent) - set(wanted))[:10]}, missing {sorted(wanted - sent)[:10]}")


def delivered(system):
    sent = Counter()
    for message in mailbox.Maildir(system.work_dir / "mail", create=False):
        match = SUBJECT.match(message["Subject"] or "")
        if match:
            sent[(int(match.group(1)), KINDS[match.group("kind")])] += 1
    return sent


def assert_events_once(system, orders, payments, context):
    """On Kafka: each step of each order (created, paid, cancelled, payment failed) as one event; each payment fact
    as one event, a refund only for what the provider refunded, an authorisation only where it authorised."""
    steps = {"CANCELLED": "order.cancelled", "PAYMENT_FAILED": "order.payment_failed"}
    wanted = {(str(order_id), event_type) for order_id, order in orders.items()
              for event_type in ("order.created", *(("order.paid",) if was_paid(order) else ()),
                                 *((steps[order["status"]],) if order["status"] in steps else ()))}
    seen = {}
    found = read_kafka(system.bootstrap, "pos.orders", wanted, 60, seen)
    assert found == wanted, f"order events {context}: missing {sorted(wanted - found)[:10]}, unwanted " \
                            f"{sorted(found - wanted)[:10]}"
    facts = {(str(order_id), "payment.authorized") for order_id, order in orders.items() if was_paid(order)} \
        | {(str(order_id), "payment.refunded") for order_id, (status, *_) in payments.items() if status == "REFUNDED"}
    read_kafka(system.bootstrap, "pos.payments", facts, 60, seen)
    allowed = {"payment.authorized": ("AUTHORIZED", "REFUNDED", "VOIDED"), "payment.refunded": ("REFUNDED",),
               "payment.failed": ("DECLINED", "VOIDED")}
    wrong = [(key, ids) for key, ids in seen.items() if len(ids) != 1]
    wrong += [(key, payments.get(int(key[0]))) for key in seen if key[1].startswith("payment.")
              and payments.get(int(key[0]), ("",))[0] not in allowed.get(key[1], ())]
    assert not wrong and facts <= set(seen), f"events not once {context}: {wrong[:10]} " \
                                             f"missing {sorted(facts - set(seen))[:10]}"


def assert_the_races_happened(plans, orders, payments, context):
    """Cancels landed before the payment was recorded — before the authorisation reached the provider (it holds only
    the void's fence) or while it was in flight (it authorised an order that was no longer waiting) — and after it.
    The saga starts as the order is committed, so the first two are the closer races: together, not each."""
    landed = Counter()
    for plan in plans:
        order = orders[plan.order_id]
        if plan.cancel_after is None or order["status"] != "CANCELLED":
            continue
        fenced = payments[plan.order_id][2] == ""  # a row the Void made: no Authorize had reached the provider
        landed["after" if was_paid(order) else "before" if fenced else "during"] += 1
    print(f"cancels landed {dict(landed)}; final states {Counter(o['status'] for o in orders.values())} {context}")
    assert landed["before"] + landed["during"] >= 5 and landed["after"] >= 5, (landed, context)
