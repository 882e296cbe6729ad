"""One order followed across every process by its trace: the whole system (as `make run` starts it) exporting
OTLP/HTTP to a real receiver on loopback."""

import secrets

import pytest
import requests

from tests.otlp import OtlpReceiver
from tests.system.conftest import ADDRESS, System, wait

PROCESSES = {"gateway", "orders", "products", "inventory", "payments", "payment_provider", "notifications",
             "kafka_bridge"}
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP's SpanKind numbers


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def system(tmp_path_factory, receiver):
    system = System(tmp_path_factory.mktemp("system"))
    system.env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
                       "OTEL_TRACES_SAMPLER": "parentbased_always_on"})
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def customer(system):
    return system.customer()


@pytest.fixture(scope="module")
def product(system):
    return system.product(system.admin(), stock=50)


def place_order(system, session, product, headers=None):
    reply = session.post(f"{system.base_url}/orders", json={
        "items": [{"product_id": product["id"], "quantity": 1}], "shipping_address": ADDRESS,
        "payment_token": "tok_visa"}, headers=headers or {}, timeout=30)
    assert reply.status_code == 201, reply.text
    order = reply.json()
    wait(lambda: session.get(f"{system.base_url}/orders/{order['id']}", timeout=15).json()["status"] == "PAID",
         60, "the order to be PAID")
    return order, reply.headers["X-Request-ID"]


def request_span(receiver, request_id):
    spans = receiver.wait_for(lambda: receiver.find(
        lambda s: s.name == "POST /orders" and s.attributes.get("pos.request_id") == request_id), 30,
        "the gateway's span of the request")
    assert len(spans) == 1
    return spans[0]


def complete_trace(receiver, trace_id, order_id):
    """The trace once it reached Kafka's order.paid and every span's parent has arrived."""
    def complete():
        spans = receiver.trace(trace_id)
        ids = {span.span_id for span in spans}
        paid_on_kafka = [s for s in spans if s.service == "kafka_bridge" and s.kind == PRODUCER
                         and s.attributes.get("messaging.kafka.message.key") == str(order_id)]
        services = {span.service for span in spans}
        orphans = [s for s in spans if s.parent_span_id and s.parent_span_id not in ids]
        return spans if PROCESSES <= services and len(paid_on_kafka) >= 2 and not orphans else None

    try:
        return receiver.wait_for(complete, 60, f"every process's spans in trace {trace_id}")
    except AssertionError as exc:
        spans = receiver.trace(trace_id)
        ids = {span.span_id for span in spans}
        seen = sorted({(s.service, s.name, s.kind, s.parent_span_id in ids or not s.parent_span_id) for s in spans})
        raise AssertionError(f"{exc}; missing {PROCESSES - {s.service for s in spans}}; seen {seen}") from None


def parent_of(spans, span):
    return next(s for s in spans if s.span_id == span.parent_span_id)


def chain(spans, span):
    """The names of ``span``'s ancestors, root last."""
    names = []
    while span.parent_span_id:
        span = parent_of(spans, span)
        names.append((span.service, span.name))
    return names


def test_one_order_is_one_trace_through_every_process(system, receiver, customer, product):
    order, request_id = place_order(system, customer, product)
    root = request_span(receiver, request_id)
    assert root.parent_span_id == "" and root.kind == SERVER
    assert root.service == "gateway"
    assert root.attributes["http.route"] == "/orders"
    assert root.attributes["http.response.status_code"] == 201
    assert root.attributes["enduser.role"] == "customer"

    spans = complete_trace(receiver, root.trace_id, order["id"])
    assert [s for s in spans if not s.parent_span_id] == [root]  # one root: everything hangs off the request

    # the gateway's RPC call is the parent of orders' create_order, which calls products and inventory
    create = next(s for s in spans if s.service == "orders" and s.name == "orders.create_order")
    assert parent_of(spans, create).name == "orders.create_order" and parent_of(spans, create).kind == CLIENT
    assert parent_of(spans, parent_of(spans, create)) == root
    for service, method in (("products", "get_products"), ("inventory", "reserve_stock")):
        server = next(s for s in spans if s.service == service and s.name == f"{service}.{method}")
        assert (parent_of(spans, parent_of(spans, server))) == create

    # the saga: payments calls the provider over gRPC; the provider's span is the child of that call
    provider = next(s for s in spans if s.service == "payment_provider" and s.name.endswith("/Authorize"))
    grpc_call = parent_of(spans, provider)
    assert grpc_call.service == "payments" and grpc_call.kind == CLIENT
    assert parent_of(spans, grpc_call).name == "payments.authorize_payment"

    # order.paid: written by orders with the payment, published by its outbox relay in the same trace, then
    # relayed to Kafka and handled by notifications (the invoice email)
    publish = next(s for s in spans if s.service == "orders" and s.name == "order.paid publish")
    assert publish.kind == PRODUCER
    assert ("gateway", "POST /orders") == chain(spans, publish)[-1]
    kafka = next(s for s in spans if s.service == "kafka_bridge" and parent_of(spans, s) == publish)
    assert kafka.name == "pos.orders publish" and kafka.attributes["messaging.kafka.message.key"] == str(order["id"])
    handlers = [s for s in spans if s.service == "notifications" and s.kind == CONSUMER]
    assert any(parent_of(spans, s) == publish for s in handlers)

    # readiness probes (the system's start waited on /health/ready) and their pings start no trace
    assert not receiver.find(lambda s: s.name in ("GET /health/ready", "GET /metrics") or s.name.endswith(".ping"))

    # SQL statements are spans of the worker that runs them
    assert any(s.service == "orders" and s.kind == CLIENT and s.attributes.get("db.system") for s in spans)


def test_a_callers_traceparent_is_continued(system, receiver, customer, product):
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    order, request_id = place_order(system, customer, product,
                                    headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    root = request_span(receiver, request_id)
    assert root.trace_id == trace_id and root.parent_span_id == parent_id
    spans = receiver.wait_for(lambda: (s := receiver.trace(trace_id)) and PROCESSES <= {x.service for x in s} and s,
                              60, "every process in the caller's trace")
    assert all(s.parent_span_id for s in spans)  # the caller's span is the root, outside the shop


def test_no_span_carries_a_token_or_personal_data(system, receiver, product):
    email = f"trace-{secrets.token_hex(6)}@example.com"
    requests.post(f"{system.base_url}/auth/register", json={"email": email, "password": "secret-pass-1",
                                                            "name": "Grace Hopper"}, timeout=15).raise_for_status()
    customer = system.session(email, "secret-pass-1")
    order, request_id = place_order(system, customer, product)
    root = request_span(receiver, request_id)
    complete_trace(receiver, root.trace_id, order["id"])
    text = repr(receiver.find(lambda s: True))
    assert customer.headers["Authorization"].split()[-1] not in text
    for personal in (email, "Grace Hopper", ADDRESS["line1"], ADDRESS["postal_code"], "tok_visa", "secret-pass-1"):
        assert personal not in text
