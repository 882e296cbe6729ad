"""Which service's database an order's SQL statements go to: MariaDB's general query log, on for a short census.

MariaDB counts statements server-wide (``Questions``), and the services' own statement histograms miss what does
not go through SQLAlchemy's cursor events (COMMIT, the outbox relay's lock calls). The general log sees every
statement with the connection it came on; a connection's database is the one it connected to or switched to, or,
for one already open, what the process list said when the census began. The log costs the server a row per
statement, so the census runs after the measured runs, never while CPU is counted.
"""

import re
import time
from collections import Counter

import pymysql
import requests

from bench.infra import MYSQL
from bench.processes import wait_until_quiet
from bench.scenarios import OrderEvents, customer_token, order_bodies
from common.timers import wait_for

CONNECT_DB = re.compile(r" on (\S+)")
CENSUS_ORDERS = 10
USE_DB = re.compile(r"\s*USE\s+`?([^`\s;]+)", re.IGNORECASE)


class StatementCensus:
    """``with StatementCensus(databases) as census: ...``; then ``census.by_database`` counts the statements
    (``Query`` commands) each of ``databases`` received meanwhile; others and unknown connections are left out."""

    def __init__(self, databases):
        self.databases = set(databases)
        self.by_database = Counter()

    def __enter__(self):
        self.connection = pymysql.connect(autocommit=True, **MYSQL)
        self.saved = self._fetch("SELECT @@global.general_log, @@global.log_output")[0]
        self._run("SET GLOBAL general_log = 0", "TRUNCATE TABLE mysql.general_log", "SET GLOBAL log_output = 'TABLE'")
        self.threads = self._process_list()
        self._run("SET GLOBAL general_log = 1")
        return self

    def __exit__(self, *exc_info):
        try:
            self._run("SET GLOBAL general_log = 0")
            rows = self._fetch("SELECT thread_id, command_type, argument FROM mysql.general_log")
            self._run("TRUNCATE TABLE mysql.general_log", f"SET GLOBAL log_output = '{self.saved[1]}'",
                      f"SET GLOBAL general_log = {int(self.saved[0])}")
        finally:
            self.connection.close()
        self.by_database = count_by_database(rows, self.threads, self.databases)

    def _process_list(self):
        return {thread: db for thread, db in self._fetch("SELECT ID, DB FROM information_schema.PROCESSLIST")}

    def _run(self, *statements):
        with self.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def _fetch(self, statement):
        with self.connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall()


def count_by_database(rows, known, databases):
    """``rows``: the general log's ``(thread_id, command_type, argument)`` in order; ``known``: ``{thread: db}`` from
    the process list. Counts each ``Query`` under its connection's database."""
    current, counts = dict(known), Counter()
    for thread, command, argument in rows:
        argument = argument.decode(errors="replace") if isinstance(argument, bytes) else str(argument)
        if command == "Connect":
            found = CONNECT_DB.search(argument)
            current[thread] = found.group(1) if found else None
        elif command == "Init DB":
            current[thread] = argument.strip()
        elif command == "Query":
            if current.get(thread) in databases:
                counts[current[thread]] += 1
            if switched := USE_DB.match(argument):  # counted where it was sent, like the rest of that connection
                current[thread] = switched.group(1)
    return counts


def census_of_orders(base_url, product_ids, amqp_uri, databases, count=CENSUS_ORDERS, rest_seconds=10.0, pause=0.3):
    """SQL statements per order, by service: ``count`` orders placed one at a time (``pause`` apart), each to
    ``order.paid`` and the work after it settled, less what the same seconds at rest cost (``rest_seconds`` of
    census first). ``databases``: ``{service: database}``. None if an order could not be placed or did not get to
    ``order.paid`` within a minute (a census of half-finished orders would undercount)."""
    headers = {"Authorization": f"Bearer {customer_token(base_url)}"}
    listener = OrderEvents(amqp_uri)
    listener.start()
    listener.ready.wait(10)
    try:
        with StatementCensus(databases.values()) as rest:
            time.sleep(rest_seconds)
        started = time.monotonic()
        with StatementCensus(databases.values()) as busy:
            placed = []
            for body in order_bodies(product_ids, count, seed=11):
                reply = requests.post(f"{base_url}/orders", json=body, headers=headers, timeout=30)
                if reply.status_code != 201:
                    return None
                placed.append(str(reply.json()["id"]))
                time.sleep(pause)
            if not wait_for(lambda: all(order_id in listener.seen["order.paid"] for order_id in placed), 60):
                return None
            wait_until_quiet()
        elapsed = time.monotonic() - started
    finally:
        listener.stopping.set()
        listener.join(5)
    return {service: round(max(0.0, busy.by_database[db] - rest.by_database[db] * elapsed / rest_seconds) / count, 1)
            for service, db in sorted(databases.items(), key=lambda item: -busy.by_database[item[1]])}
