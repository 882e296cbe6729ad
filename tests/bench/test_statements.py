"""bench.statements: the general log's census counts each statement under the database of its connection."""

import uuid

import pymysql
import pytest

from bench.infra import MYSQL
from bench.statements import StatementCensus, count_by_database


@pytest.fixture
def databases():
    names = [f"pos_census_{uuid.uuid4().hex[:8]}_{n}" for n in range(3)]
    admin = pymysql.connect(autocommit=True, **MYSQL)
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f"CREATE DATABASE `{name}`")
    yield names
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP DATABASE `{name}`")
    admin.close()


def run(connection, count):
    with connection.cursor() as cursor:
        for _ in range(count):
            cursor.execute("SELECT 1")


def test_statements_are_counted_by_the_database_of_their_connection(databases):
    first, second, ignored = databases
    # connected before the census: only the process list knows its database
    before = pymysql.connect(database=first, autocommit=None, **MYSQL)
    try:
        with StatementCensus([first, second]) as census:
            run(before, 3)
            during = pymysql.connect(database=second, autocommit=None, **MYSQL)  # its Connect line names the database
            run(during, 2)
            with during.cursor() as cursor:
                cursor.execute(f"USE `{ignored}`")  # switched away: what follows is not second's
            run(during, 4)
            during.close()
    finally:
        before.close()
    assert census.by_database[first] == 3
    assert census.by_database[second] == 1 + 2 + 1  # PyMySQL's SET NAMES on connecting, the two, the USE itself
    assert ignored not in census.by_database


def test_the_log_is_read_in_order_a_switch_counts_from_its_line():
    rows = [(7, "Query", "SELECT 1"), (7, "Init DB", "b"), (7, "Query", "SELECT 2"), (7, "Query", "use `c`"),
            (7, "Query", "SELECT 3"), (8, "Connect", "root@x on a using TCP/IP"), (8, "Query", "COMMIT"),
            (9, "Query", "SELECT 4")]
    assert count_by_database(rows, {7: "a"}, {"a", "b"}) == {"a": 2, "b": 2}
