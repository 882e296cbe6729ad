"""Read replicas of a service's MySQL/MariaDB database: which ones are fit to read from, and read-your-writes.

``DB_REPLICA_URIS`` maps a service's ``DB_URIS`` key to its replicas (a list, or a comma-separated string such as
``${ORDERS_DB_REPLICA_URIS:}``). A background greenlet (``ReplicaSet.run``) checks them every
``DB_REPLICA_CHECK_SECONDS``: a replica that cannot be reached, or whose lag exceeds ``DB_REPLICA_MAX_LAG_SECONDS``,
is out of the rotation until a later check finds it fit again. Lag is the GTID gap measured in time: the age of the
oldest primary position (sampled at each check) that the replica has not applied yet, so a replica whose
replication stopped is seen lagging as soon as the primary moves on, and a quiet caught-up one is not.

Read-your-writes: a worker that commits a write on the primary records the primary's ``@@gtid_binlog_pos`` in its
context data under ``POSITIONS_KEY`` (``{service: position}``); ``common.rpc`` returns it with the reply, the caller
sends it along with its later calls (the gateway keeps it per client for a while), and a read carrying a position
is served by a replica only once ``MASTER_GTID_WAIT(position, DB_REPLICA_WAIT_SECONDS)`` says it has it, else by
the primary.
"""

import collections
import logging
import time

import eventlet
from nameko import config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

log = logging.getLogger(__name__)

POSITIONS_KEY = "db_positions"
PRIMARY = "primary"
DEFAULT_MAX_LAG_SECONDS = 5.0
DEFAULT_CHECK_SECONDS = 1.0
DEFAULT_WAIT_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 2
CHECK_TIMEOUT_SECONDS = 2


def replica_uris(key):
    """The replica URIs configured for a ``DB_URIS`` key (``"orders:Base"``); none for SQLite."""
    setting = (config.get("DB_REPLICA_URIS") or {}).get(key) or []
    if isinstance(setting, str):
        setting = setting.split(",")
    return [uri.strip() for uri in setting if uri and uri.strip() and not uri.strip().startswith("sqlite")]


def settings():
    return (float(config.get("DB_REPLICA_MAX_LAG_SECONDS") or DEFAULT_MAX_LAG_SECONDS),
            float(config.get("DB_REPLICA_CHECK_SECONDS") or DEFAULT_CHECK_SECONDS),
            float(config.get("DB_REPLICA_WAIT_SECONDS") or DEFAULT_WAIT_SECONDS))


# --- GTID positions ("domain-server-sequence", comma-separated, one per replication domain) ----------------------

def parse_position(position):
    parsed = {}
    for gtid in (position or "").split(","):
        parts = gtid.strip().split("-")
        if len(parts) == 3 and all(part.isdigit() for part in parts):
            parsed[int(parts[0])] = (int(parts[2]), gtid.strip())
    return parsed


def reached(current, wanted):
    """Has a server at ``current`` applied everything of ``wanted``? (per domain, by sequence number)"""
    have = parse_position(current)
    return all(domain in have and have[domain][0] >= seq for domain, (seq, _) in parse_position(wanted).items())


def merge_position(first, second):
    merged = parse_position(first)
    for domain, (seq, gtid) in parse_position(second).items():
        if domain not in merged or merged[domain][0] < seq:
            merged[domain] = (seq, gtid)
    return ",".join(gtid for _, (_, gtid) in sorted(merged.items()))


def merge_positions(data, positions):
    """Fold ``{service: position}`` into a context data dict; True if it learnt something new."""
    if not isinstance(positions, dict):
        return False
    known = dict(data.get(POSITIONS_KEY) or {})
    before = dict(known)
    for service, position in positions.items():
        if isinstance(service, str) and isinstance(position, str):
            known[service] = merge_position(known.get(service), position)
    if known != before:
        data[POSITIONS_KEY] = known
        return True
    return False


def wanted_position(data, service):
    positions = data.get(POSITIONS_KEY) if data else None
    position = positions.get(service) if isinstance(positions, dict) else None
    return position if isinstance(position, str) and parse_position(position) else None


# --- the replicas ---------------------------------------------------------------------------------------------

def read_only_connections(engine):
    """Every connection of a replica engine refuses writes in the server too (``ReadOnlySession`` is the first
    guard, in the session)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")


class Replica:
    """``engine`` serves the reads; ``checks`` (one connection, with read timeouts) the periodic checks, so a
    replica that hangs rather than refusing connections fails its check instead of stalling it."""

    def __init__(self, uri, engine, checks):
        url = make_url(uri)
        self.name = f"{url.host}:{url.port or 3306}"
        self.engine = engine
        self.checks = checks
        self.fit = False  # in the rotation: reachable and within the lag bound at the last check
        self.position = None
        self.lag = None
        self.error = "not checked yet"

    def report(self):
        return {"name": self.name, "status": "UP" if self.fit else "DOWN", "lag_seconds": self.lag,
                "error": self.error}


class ReplicaSet:
    def __init__(self, service, primary, replicas, max_lag, interval, wait):
        self.service = service
        self.primary = primary
        self.replicas = replicas
        self.max_lag, self.interval, self.wait = max_lag, interval, wait
        self.samples = collections.deque(maxlen=int(max_lag * 4 / interval) + 10)  # (time, primary position)
        self.turn = 0

    def run(self):
        while True:
            self.check()
            eventlet.sleep(self.interval)

    def check(self):
        now = time.monotonic()
        try:
            with self.primary.connect() as connection:
                self.samples.append((now, connection.exec_driver_sql("SELECT @@gtid_binlog_pos").scalar()))
        except SQLAlchemyError as exc:
            log.warning("%s: cannot read the primary's position: %r", self.service, exc)
        for replica in self.replicas:
            self._check(replica, now)

    def _check(self, replica, now):
        try:
            with replica.checks.connect() as connection:
                replica.position = connection.exec_driver_sql("SELECT @@gtid_slave_pos").scalar()
        except SQLAlchemyError as exc:
            self._out(replica, f"{type(exc).__name__}: {exc}"[:300])
            return
        behind = [at for at, position in self.samples if not reached(replica.position, position)]
        replica.lag = round(now - behind[0], 3) if behind else 0.0
        fit = replica.lag <= self.max_lag
        if fit != replica.fit:
            log.warning("%s: replica %s %s (lag %.1fs)", self.service, replica.name,
                        "back in the rotation" if fit else "out of the rotation", replica.lag)
        replica.fit, replica.error = fit, None if fit else f"lag above {self.max_lag:g}s"

    def _out(self, replica, error):
        if replica.fit:
            log.warning("%s: replica %s out of the rotation: %s", self.service, replica.name, error)
        replica.fit, replica.lag, replica.error = False, None, error

    def choose(self, wanted=None):
        """``(connection, name)``: a connection to a fit replica that has ``wanted``, or ``(None, PRIMARY)``."""
        fit = [replica for replica in self.replicas if replica.fit]
        self.turn += 1
        for index in range(len(fit)):
            replica = fit[(self.turn + index) % len(fit)]
            try:
                connection = replica.engine.connect()
            except SQLAlchemyError as exc:
                self._out(replica, f"{type(exc).__name__}: {exc}"[:300])
                continue
            if wanted is None or self._has(connection, replica, wanted):
                return connection, replica.name
            connection.close()
        return None, PRIMARY

    def _has(self, connection, replica, wanted):
        if replica.position and reached(replica.position, wanted):
            return True
        try:
            done = connection.execute(text("SELECT MASTER_GTID_WAIT(:position, :wait)"),
                                      {"position": wanted, "wait": self.wait}).scalar()
            connection.rollback()  # the read's own transaction starts after the wait
        except DBAPIError as exc:
            log.warning("%s: MASTER_GTID_WAIT on %s failed: %r", self.service, replica.name, exc)
            return False
        return done == 0

    def report(self):
        return [replica.report() for replica in self.replicas]

    def dispose(self):
        for replica in self.replicas:
            replica.engine.dispose()
            replica.checks.dispose()
