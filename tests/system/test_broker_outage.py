"""RabbitMQ stopped for 20 s in the middle of a stream of HTTP orders (a private node, `rabbitmqctl stop_app`,
then `start_app`): requests during the outage answer 503 with `Retry-After` within the RPC deadline, no process
exits, and once the broker is back every order placed reaches PAID with its events on Kafka, and a refused request
sent again with its Idempotency-Key places its order once."""

import time

import pytest

from tests.system.conftest import (
    OUTAGE_SAGA_ENV,
    Stream,
    System,
    assert_all_paid_and_on_kafka,
    assert_refused_cleanly,
    assert_retries_place_each_order_once,
    running,
    wait,
)
from tests.system.servers import PrivateRabbit

START_STOCK = 1000
OUTAGE_SECONDS = 20


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    broker = PrivateRabbit(tmp_path_factory.mktemp("rabbit"), f"pos_outage_{time.monotonic_ns() % 10**8}")
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory, rabbit):
    yield from running(System(tmp_path_factory.mktemp("system"), broker=rabbit, extra_env=OUTAGE_SAGA_ENV))


@pytest.mark.slow
def test_a_broker_outage_loses_no_order(system, rabbit, admin):
    product = system.product(admin, START_STOCK)
    customers = [system.customer() for _ in range(3)]
    stream = Stream(system, customers, product["id"], per_thread=10**6).start()
    wait(lambda: len(stream.accepted) >= 6, 30, "orders before the outage")
    rabbit.stop_app()
    time.sleep(OUTAGE_SECONDS)
    rabbit.start_app()
    back = time.monotonic()
    wait(lambda: len(stream.accepted_since(back)) >= 6, 60, "orders accepted after the broker is back", 1)
    stream.stop()
    stream.join()

    assert system.exited() is None
    assert_refused_cleanly(stream, "the outage")
    placed = assert_retries_place_each_order_once(system, stream, customers)
    assert_all_paid_and_on_kafka(system, stream, admin, product["id"], START_STOCK, committed=placed)
