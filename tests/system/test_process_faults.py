"""SIGKILL of one process in the middle of a stream of HTTP orders, restarted ~3 s later: nothing is lost."""

import time

import pytest

from tests.system.conftest import Stream, assert_all_paid_and_on_kafka

START_STOCK = 1000


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["orders", "inventory", "payments", "notifications", "kafka_bridge"])
def test_a_killed_process_restarted_loses_no_order(system, admin, victim):
    product = system.product(admin, START_STOCK)
    stream = Stream(system, [system.customer() for _ in range(3)], product["id"], per_thread=12).start()
    time.sleep(1.5)
    system.kill(victim)
    time.sleep(3)
    system.launch(victim)
    stream.join()
    assert system.exited() is None
    assert_all_paid_and_on_kafka(system, stream, admin, product["id"], START_STOCK)
    assert len(stream.accepted) >= 10, stream.answers
