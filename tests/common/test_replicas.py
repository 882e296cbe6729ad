"""Read replicas (common.replicas, common.db, common.rpc) against real MariaDB GTID replication.

A service's read-only entrypoints read from its replica; a caller that wrote passes the primary's position along
(common.rpc), so its next read waits for a replica that has the write or goes to the primary. A replica that stops
replicating or dies drops out of the rotation once its lag passes the bound, and comes back when it catches up.
"""

import pytest
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from prometheus_client import REGISTRY
from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, mapped_column

from common.db import Database, ReadOnlySession
from common.replicas import PRIMARY, merge_position, reached, replica_uris
from common.rpc import ServiceRpc, rpc
from common.timers import wait_for

MAX_LAG = 1.0


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id = mapped_column(Integer, primary_key=True)
    text = mapped_column(String(100), nullable=False)


class NotesService:
    name = "notes"
    db = Database(Base)

    @rpc
    def add(self, text):
        with self.db.get_session() as session:
            note = Note(text=text)
            session.add(note)
            session.flush()
            return note.id

    @rpc(read_only=True)
    def read(self, note_id):
        with self.db.get_session() as session:
            note = session.get(Note, note_id)
            return None if note is None else note.text

    @rpc(read_only=True)
    def sneak_a_write(self):
        with self.db.get_session() as session:
            session.add(Note(text="sneaked"))


class Caller:
    """Writes then reads in one worker, as the gateway does within a request."""

    name = "notes_caller"
    notes = ServiceRpc("notes")

    @rpc
    def add_then_read(self, text):
        note_id = self.notes.add(text)
        return note_id, self.notes.read(note_id)


def reads(target):
    return REGISTRY.get_sample_value("pos_db_reads_total", {"service": "notes", "target": target}) or 0


@pytest.fixture
def notes(rabbit_config, replicated_databases, container_factory):
    primary_uri, replica_uri = replicated_databases(["notes"])["notes"]
    engine = create_engine(primary_uri)
    Base.metadata.create_all(engine)
    engine.dispose()
    settings = {"DB_URIS": {"notes:Base": primary_uri}, "DB_REPLICA_URIS": {"notes:Base": replica_uri},
                "DB_REPLICA_MAX_LAG_SECONDS": MAX_LAG, "DB_REPLICA_CHECK_SECONDS": 0.1,
                "DB_REPLICA_WAIT_SECONDS": 0.3}

    def start(**overrides):
        with config.patch({**settings, **overrides}):
            service = container_factory(NotesService)
            service.start()
            caller = container_factory(Caller)
            caller.start()
        provider = next(dep for dep in service.extensions if isinstance(dep, Database))
        return provider

    return start


def replica_fit(provider, fit=True):
    return wait_for(lambda: all((item["status"] == "UP") is fit for item in provider.replica_report()), 20)


def test_reads_land_on_the_replica(notes, mariadb_replication):
    provider = notes()
    with ServiceRpcClient("notes") as client:
        note_id = client.add("first")
        mariadb_replication.wait_until_caught_up()
        before = reads(f"127.0.0.1:{mariadb_replication.replica.port}")
        assert [client.read(note_id) for _ in range(5)] == ["first"] * 5
    assert reads(f"127.0.0.1:{mariadb_replication.replica.port}") == before + 5
    assert provider.replica_report()[0]["lag_seconds"] <= MAX_LAG


def test_a_write_then_an_immediate_read_sees_the_write_though_the_replica_is_behind(notes, mariadb_replication):
    notes(DB_REPLICA_MAX_LAG_SECONDS=30)  # the delayed replica stays in the rotation
    # MASTER_DELAY counts from the commit's timestamp in whole seconds, so a delay of 2 can be 1.1 s: a CI run read
    # note 2 from the replica that way. The last note must still be missing when the final read arrives.
    mariadb_replication.delay(5)
    with ServiceRpcClient("notes") as client:
        client.add("warm-up")  # the replica's lag now shows
    with ServiceRpcClient("notes_caller") as caller:
        before_primary = reads(PRIMARY)
        for number in range(3):
            note_id, text = caller.add_then_read(f"note {number}")
            assert text == f"note {number}"
    assert reads(PRIMARY) == before_primary + 3  # the replica did not have it within the wait
    with ServiceRpcClient("notes") as client:
        assert client.read(note_id) is None  # a reader without the position: the replica, really behind


def test_a_read_after_a_write_waits_for_the_replica_when_it_catches_up_in_time(notes, mariadb_replication):
    notes(DB_REPLICA_WAIT_SECONDS=10, DB_REPLICA_MAX_LAG_SECONDS=30)
    mariadb_replication.delay(1)
    replica = f"127.0.0.1:{mariadb_replication.replica.port}"
    with ServiceRpcClient("notes_caller") as caller:
        before = reads(replica)
        assert caller.add_then_read("waited for")[1] == "waited for"
    assert reads(replica) == before + 1


def test_stopped_replication_falls_back_to_the_primary_then_comes_back(notes, mariadb_replication):
    provider = notes()
    replica = f"127.0.0.1:{mariadb_replication.replica.port}"
    mariadb_replication.replica.query("STOP SLAVE")
    with ServiceRpcClient("notes") as client:
        note_id = client.add("while stopped")
        assert replica_fit(provider, fit=False), provider.replica_report()
        before = reads(PRIMARY)
        assert [client.read(note_id) for _ in range(3)] == ["while stopped"] * 3
        assert reads(PRIMARY) == before + 3
        mariadb_replication.replica.query("START SLAVE")
        assert replica_fit(provider), provider.replica_report()
        mariadb_replication.wait_until_caught_up()
        before = reads(replica)
        assert client.read(note_id) == "while stopped"
        assert reads(replica) == before + 1


def test_a_killed_replica_is_skipped_without_errors_and_used_again_when_back(notes, mariadb_replication):
    provider = notes()
    replica = f"127.0.0.1:{mariadb_replication.replica.port}"
    with ServiceRpcClient("notes") as client:
        note_id = client.add("before the crash")
        mariadb_replication.wait_until_caught_up()
        mariadb_replication.replica.kill()
        # at once, before any check noticed: the connect fails and the read goes to the primary
        assert client.read(note_id) == "before the crash"
        assert replica_fit(provider, fit=False)
        assert provider.replica_report()[0]["error"]
        later = client.add("during the outage")
        assert client.read(later) == "during the outage"
        mariadb_replication.replica.start()
        assert replica_fit(provider), provider.replica_report()
        mariadb_replication.wait_until_caught_up()
        before = reads(replica)
        assert client.read(later) == "during the outage"
        assert reads(replica) == before + 1


def test_a_replica_that_hangs_fails_its_checks_and_reads_go_to_the_primary(notes, mariadb_replication):
    import os
    import signal

    provider = notes()
    with ServiceRpcClient("notes") as client:
        note_id = client.add("before the freeze")
        assert replica_fit(provider)
        os.kill(mariadb_replication.replica.process.pid, signal.SIGSTOP)
        try:
            assert replica_fit(provider, fit=False), provider.replica_report()
            before = reads(PRIMARY)
            assert client.read(note_id) == "before the freeze"
            assert reads(PRIMARY) == before + 1
        finally:
            os.kill(mariadb_replication.replica.process.pid, signal.SIGCONT)
        assert replica_fit(provider), provider.replica_report()


def test_a_read_only_entrypoint_may_not_write(notes):
    notes()
    with ServiceRpcClient("notes") as client:
        with pytest.raises(Exception, match="ReadOnlySession"):
            client.sneak_a_write()


def test_without_replicas_reads_use_the_primary_and_may_not_write(rabbit_config, tmp_path, container_factory):
    uri = f"sqlite:///{tmp_path}/notes.db"
    engine = create_engine(uri)
    Base.metadata.create_all(engine)
    engine.dispose()
    with config.patch({"DB_URIS": {"notes:Base": uri}, "DB_REPLICA_URIS": {"notes:Base": uri}}):
        container = container_factory(NotesService)
        container.start()
    provider = next(dep for dep in container.extensions if isinstance(dep, Database))
    assert provider.replicas is None  # SQLite has no replicas: a replica URI for it is ignored
    with ServiceRpcClient("notes") as client:
        before = reads(PRIMARY)
        assert client.read(client.add("plain")) == "plain"
        assert reads(PRIMARY) == before + 1
        with pytest.raises(Exception, match="ReadOnlySession"):
            client.sneak_a_write()
    assert ReadOnlySession.__doc__


def test_positions_compare_and_merge_per_domain():
    assert reached("1-1-10,2-2-5", "1-1-9")
    assert not reached("1-1-10", "1-1-10,2-2-1")
    assert not reached("", "1-1-1")
    assert reached("1-1-3", "")
    assert merge_position("1-1-10,2-2-5", "1-1-12") == "1-1-12,2-2-5"
    assert merge_position(None, "0-1-3") == "0-1-3"


def test_replica_uris_come_as_a_list_or_comma_separated():
    with config.patch({"DB_REPLICA_URIS": {"orders:Base": " mysql://a/db , mysql://b/db,", "x:Base": ["mysql://c"],
                                           "s:Base": "sqlite:///x.db"}}):
        assert replica_uris("orders:Base") == ["mysql://a/db", "mysql://b/db"]
        assert replica_uris("x:Base") == ["mysql://c"]
        assert replica_uris("s:Base") == []
        assert replica_uris("none:Base") == []


def test_readiness_shows_each_replica_and_its_lag_without_failing_for_it(replicated_databases, mariadb_replication):
    from common import health
    from gateway.routes.operations import replica_checks

    primary_uri, replica_uri = replicated_databases(["notes"])["notes"]
    with config.patch({"DB_URIS": {"notes:Base": primary_uri}, "DB_REPLICA_URIS": {"notes:Base": replica_uri},
                       "DB_REPLICA_MAX_LAG_SECONDS": MAX_LAG}):
        def probe():
            checks = {"database:notes": lambda: health.check_database(primary_uri), **replica_checks(2)}
            return health.run_checks(checks, 2, optional=[name for name in checks if name.startswith("replica:")])

        ready, results = probe()
        assert ready and results["replica:notes:0"]["status"] == "UP", results
        assert results["replica:notes:0"]["lag_seconds"] == 0.0
        mariadb_replication.replica.query("STOP SLAVE")
        mariadb_replication.primary.query(f"CREATE TABLE {primary_uri.rsplit('/', 1)[1].split('?')[0]}.t (i int)")
        ready, results = probe()
        assert ready, results  # the replica is optional: reads go to the primary meanwhile
        assert results["replica:notes:0"]["status"] == "DOWN"
        assert results["replica:notes:0"]["optional"] is True
        assert "not running" in results["replica:notes:0"]["error"]
        mariadb_replication.replica.kill()
        ready, results = probe()
        assert ready and results["replica:notes:0"]["status"] == "DOWN", results
