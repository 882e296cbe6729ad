"""tansu restarted mid-stream (it forgets every topic): the relay resumes, orders paid after it are on Kafka."""

import time

import pytest

from tests.system.conftest import Stream, assert_all_paid_and_on_kafka

START_STOCK = 1000


@pytest.mark.slow
def test_the_relay_resumes_after_kafka_restarts(system, admin):
    product = system.product(admin, START_STOCK)
    stream = Stream(system, [system.customer() for _ in range(3)], product["id"], per_thread=20).start()
    time.sleep(1.5)
    system.restart_kafka(down_seconds=2)
    restarted = time.monotonic()
    stream.join()
    assert system.exited() is None
    # orders accepted after the restart were paid after it: their order.paid went to the new tansu
    after = [order["id"] for _, order, accepted_at in stream.accepted if accepted_at > restarted]
    assert after, f"no order accepted after the restart: {stream.answers}"
    assert_all_paid_and_on_kafka(system, stream, admin, product["id"], START_STOCK, since=after)
