"""The outbox publishes what a transaction committed, in order, and nothing that rolled back."""

import json
from datetime import timedelta

import eventlet
import pytest
from eventlet.event import Event
from nameko import config
from nameko.events import event_handler
from nameko.exceptions import RemoteError
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import Column, Integer, String, event, select, text
from sqlalchemy.orm import DeclarativeBase, Session

from common.correlation import CorrelationId
from common.db import Database, make_engine
from common.events import ProcessedEventMixin, make_envelope, utcnow
from common.outbox import Outbox, OutboxMessageMixin
from tests.support import wait_until


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id = Column(Integer, primary_key=True)
    text = Column(String(50))


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class NotesService:
    name = "notes"
    db = Database(Base)
    outbox = Outbox(OutboxMessage)
    correlation = CorrelationId()

    @rpc
    def write(self, text, fail=False):
        with self.db.get_session() as session:
            note = Note(text=text)
            session.add(note)
            session.flush()
            self.outbox.add(session, "note.written", note.id, {"text": text})
            if fail:
                raise ValueError("rolled back")
        return note.id


received = []


class Listener:
    name = "listener"

    @event_handler("notes", "note.written")
    def on_note(self, envelope):
        received.append(envelope)


@pytest.fixture
def notes_db(rabbit_config, db_uris):
    uri = db_uris["products:Base"]
    engine = make_engine(uri)
    Base.metadata.create_all(engine)
    engine.dispose()
    received.clear()
    with config.patch({"DB_URIS": {"notes:Base": uri}, "OUTBOX_POLL_INTERVAL": 0.2}):
        yield uri


def test_committed_events_are_published_in_order_and_rolled_back_ones_never(
        notes_db, container_factory):
    listener = container_factory(Listener)
    listener.start()
    notes = container_factory(NotesService)
    notes.start()

    with ServiceRpcClient("notes") as client:
        with pytest.raises(RemoteError):
            client.write("never", fail=True)
        for i in range(5):
            client.write(f"note {i}")
    wait_until(lambda: len(received) >= 5, message="5 events")

    assert [e["data"]["text"] for e in received] == [f"note {i}" for i in range(5)]
    assert all(e["event_type"] == "note.written" and e["source"] == "notes" for e in received)
    assert all(e["correlation_id"] for e in received)
    engine = make_engine(notes_db)
    with engine.connect() as conn:
        unsent = conn.execute(select(OutboxMessage.id).where(OutboxMessage.published_at.is_(None))).all()
    assert unsent == []


def test_events_written_while_the_relay_was_down_are_published_after_restart(
        notes_db, container_factory):
    engine = make_engine(notes_db)

    with Session(engine) as session, session.begin():
        for i in range(3):
            env = make_envelope("note.written", i, {"text": f"left {i}"}, source="notes")
            session.add(OutboxMessage(event_id=env["event_id"], event_type="note.written",
                                      aggregate_id=str(i), envelope=json.dumps(env)))
    listener = container_factory(Listener)
    listener.start()
    notes = container_factory(NotesService)
    notes.start()
    wait_until(lambda: len(received) >= 3, message="3 events")
    assert [e["data"]["text"] for e in received] == ["left 0", "left 1", "left 2"]


class StoreNotes:
    name = "store_notes"
    store = Database(Base)
    outbox = Outbox(OutboxMessage, database="store")

    @rpc
    def write(self, text):
        with self.store.get_session() as session:
            self.outbox.add(session, "note.written", 1, {"text": text})


class NotesWithoutDb(StoreNotes):
    outbox = Outbox(OutboxMessage)


def test_the_outbox_uses_the_database_it_names(notes_db, container_factory):
    with config.patch({"DB_URIS": {"store_notes:Base": notes_db}}):
        container = container_factory(StoreNotes)
        container.start()
    outbox = next(provider for provider in container.dependencies if provider.attr_name == "outbox")
    with ServiceRpcClient("store_notes") as client:
        client.write("through store")

    assert outbox.database.attr_name == "store"
    wait_until(lambda: outbox.backlog() == 0 and published(notes_db) == 1, message="the event published")


def test_an_outbox_without_its_database_fails_at_setup(notes_db, container_factory):
    with config.patch({"DB_URIS": {"store_notes:Base": notes_db}}), pytest.raises(LookupError, match="`db`"):
        container_factory(NotesWithoutDb).start()


def published(uri):
    engine = make_engine(uri)
    try:
        with Session(engine) as session:
            return len(session.scalars(select(OutboxMessage).where(OutboxMessage.published_at.isnot(None))).all())
    finally:
        engine.dispose()


def test_an_idle_relay_polls_less_and_less_often_but_still_finds_what_another_process_left(
        notes_db, container_factory):
    listener = container_factory(Listener)
    listener.start()
    notes = container_factory(NotesService)
    outbox = next(d for d in notes.dependencies if isinstance(d, Outbox))
    polls, batches = [], []
    relay_batch, has_unsent = outbox.relay_batch, outbox.has_unsent
    outbox.relay_batch = lambda: batches.append(1) or relay_batch()
    outbox.has_unsent = lambda: polls.append(1) or has_unsent()
    with config.patch({"OUTBOX_IDLE_POLL_MAX_SECONDS": 3.0}):
        notes.start()
    eventlet.sleep(6.5)  # every 0.2 s would be 33 polls; backing off: at 0, 0.2, 0.6, 1.4, 3.0, 6.0 s
    assert 4 <= len(batches) + len(polls) <= 8, (batches, polls)
    assert batches == [1]  # the sweep at start; the polls after it only looked, without the replicas' lock

    engine = make_engine(notes_db)  # a row that no worker of this process wrote (a crashed replica's)
    with Session(engine) as session, session.begin():
        env = make_envelope("note.written", 9, {"text": "left by a crash"}, source="notes")
        session.add(OutboxMessage(event_id=env["event_id"], event_type="note.written", aggregate_id="9",
                                  envelope=json.dumps(env)))
    wait_until(lambda: received, timeout=8, message="the row left by a crash, within the back-off's bound")
    assert len(batches) == 2


def test_a_worker_that_wrote_kicks_the_relay_straight_into_a_batch(notes_db, container_factory):
    container_factory(Listener).start()
    notes = container_factory(NotesService)
    outbox = next(d for d in notes.dependencies if isinstance(d, Outbox))
    with config.patch({"OUTBOX_POLL_INTERVAL": 3600}):
        notes.start()
    polls, has_unsent = [], outbox.has_unsent
    outbox.has_unsent = lambda: polls.append(1) or has_unsent()
    with ServiceRpcClient("notes") as client:
        client.write("kicked")
    wait_until(lambda: received, timeout=5, message="the event, without waiting for a poll")
    assert polls == []


def left_unsent(uri, *texts):
    """Rows no worker of a running relay wrote (a crashed replica's): only a poll or a batch finds them."""
    engine = make_engine(uri)
    with Session(engine) as session, session.begin():
        for number, note in enumerate(texts, start=1):
            env = make_envelope("note.written", number, {"text": note}, source="notes")
            session.add(OutboxMessage(event_id=env["event_id"], event_type="note.written", aggregate_id=str(number),
                                      envelope=json.dumps(env)))
    return engine


def started_relay(container_factory):
    notes = container_factory(NotesService)
    with config.patch({"OUTBOX_POLL_INTERVAL": 3600}):  # after its first sweep, it polls no more in the test
        notes.start()
    return next(d for d in notes.dependencies if isinstance(d, Outbox))


def test_a_relay_batch_takes_one_connection_for_its_turn_its_read_and_its_update(notes_db, container_factory):
    container_factory(Listener).start()
    outbox = started_relay(container_factory)
    engine = left_unsent(notes_db, "one", "two", "three")
    checkouts = []
    event.listen(outbox.database.engine, "checkout", lambda *args: checkouts.append(1))

    assert outbox.relay_batch() == 3
    assert len(checkouts) == 1
    wait_until(lambda: len(received) == 3, timeout=5, message="the three events")
    with engine.connect() as connection:
        assert connection.scalar(select(OutboxMessage.id).where(OutboxMessage.published_at.is_(None))) is None
        if engine.dialect.name == "mysql":  # the turn was given back
            name = f"outbox:notes:{engine.url.database}"
            assert connection.scalar(text("SELECT IS_FREE_LOCK(:name)"), {"name": name}) == 1


def test_replicas_relays_take_turns_so_a_batch_goes_out_once(db_backend, notes_db, container_factory):
    if db_backend != "mysql":
        pytest.skip("replicas share a MySQL database; SQLite serves one process")
    container_factory(Listener).start()
    first, second = started_relay(container_factory), started_relay(container_factory)
    left_unsent(notes_db, "one", "two", "three")
    publishing, go_on, publish = Event(), Event(), first.publish

    def held_publish(row):
        if not publishing.ready():
            publishing.send(True)
            go_on.wait()
        publish(row)

    first.publish = held_publish
    batch = eventlet.spawn(first.relay_batch)
    publishing.wait()
    assert second.relay_batch() == 0  # the first replica's turn
    go_on.send(True)
    assert batch.wait() == 3
    assert second.relay_batch() == 0  # marked sent before the turn was given back
    wait_until(lambda: len(received) == 3, timeout=5, message="the three events")
    eventlet.sleep(0.3)
    assert sorted(envelope["data"]["text"] for envelope in received) == ["one", "three", "two"]


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class PrunedNotes(NotesService):
    name = "notes"
    db = Database(Base, handled_events=ProcessedEvent)


def test_sent_rows_and_processed_events_past_their_retention_are_pruned_by_the_timer(notes_db, container_factory):
    engine = make_engine(notes_db)
    old, recent = utcnow() - timedelta(days=8), utcnow() - timedelta(days=6)
    with Session(engine) as session, session.begin():
        for number, (published_at, event_id) in enumerate([(old, "sent-long-ago"), (recent, "sent-lately"),
                                                           (None, "never-sent")]):
            session.add(OutboxMessage(event_id=event_id, event_type="note.kept", aggregate_id=str(number),
                                      envelope="{}", created_at=old, published_at=published_at))
        session.add_all([ProcessedEvent(event_id="handled-long-ago", handler="h", processed_at=old),
                         ProcessedEvent(event_id="handled-lately", handler="h", processed_at=recent)])
    ages = {"OUTBOX_RETENTION_SECONDS": 7 * 24 * 3600, "PROCESSED_EVENTS_RETENTION_SECONDS": 7 * 24 * 3600,
            "RETENTION_INTERVAL_SECONDS": 0.1, "OUTBOX_POLL_INTERVAL": 3600}
    with config.patch(ages):
        container_factory(PrunedNotes).start()

        def remaining():
            with Session(engine) as session:
                outbox = set(session.scalars(select(OutboxMessage.event_id)))
                processed = set(session.scalars(select(ProcessedEvent.event_id)))
            return (outbox, processed) if "sent-long-ago" not in outbox and "handled-long-ago" not in processed \
                else None

        outbox, processed = wait_until(remaining, message="the pruner to run")
    engine.dispose()
    assert outbox == {"sent-lately", "never-sent"}  # an unsent row is never pruned, however old
    assert processed == {"handled-lately"}
