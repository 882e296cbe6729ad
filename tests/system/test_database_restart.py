"""MariaDB restarted in the middle of a stream of HTTP orders (a private `mariadbd` holding every service's
database, stopped cleanly and started again 5 s later): requests meanwhile answer 503 with `Retry-After`, no
process exits, orders go through again, and every order placed reaches PAID with its events on Kafka, once."""

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

START_STOCK = 1000
DOWN_SECONDS = 5


@pytest.fixture(scope="module")
def system(tmp_path_factory, mariadb):
    yield from running(System(tmp_path_factory.mktemp("system"), mariadb=mariadb, extra_env=OUTAGE_SAGA_ENV))


@pytest.mark.slow
def test_a_database_restart_loses_and_duplicates_no_order(system, mariadb, admin):
    product = system.product(admin, START_STOCK)
    customers = [system.customer() for _ in range(3)]
    stream = Stream(system, customers, product["id"], per_thread=10**6).start()
    wait(lambda: len(stream.accepted) >= 6, 30, "orders before the restart")
    mariadb.restart(DOWN_SECONDS)
    back = time.monotonic()
    wait(lambda: len(stream.accepted_since(back)) >= 6, 60, "orders accepted after the restart", 1)
    stream.stop()
    stream.join()

    assert system.exited() is None
    assert_refused_cleanly(stream, "the restart")
    placed = assert_retries_place_each_order_once(system, stream, customers)
    assert_all_paid_and_on_kafka(system, stream, admin, product["id"], START_STOCK, committed=placed)
