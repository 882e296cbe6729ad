"""``first_delivery``: an (event, handler) pair is applied once, also when two deliveries race, on both databases."""

import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy.exc import DataError
from sqlalchemy.orm import DeclarativeBase, Session

from common.db import make_engine
from common.errors import Conflict, DependencyUnavailable
from common.events import ProcessedEventMixin, domain_event_handler, first_delivery
from tests.support import wait_until


class Base(DeclarativeBase):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


@pytest.fixture
def engine(db_uris):
    engine = make_engine(db_uris["products:Base"])
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def deliver(engine, envelope, handler="apply"):
    with Session(engine) as session, session.begin():
        return first_delivery(session, ProcessedEvent, envelope, handler)


def test_the_first_delivery_is_applied_and_repeats_are_not(engine):
    envelope = {"event_id": str(uuid.uuid4())}
    assert deliver(engine, envelope) is True
    assert deliver(engine, envelope) is False
    assert deliver(engine, envelope, handler="another_handler") is True  # each handler applies it once


def test_a_delivery_whose_transaction_rolled_back_is_not_remembered(engine):
    envelope = {"event_id": str(uuid.uuid4())}
    with Session(engine) as session:
        with session.begin():
            assert first_delivery(session, ProcessedEvent, envelope, "apply") is True
            session.rollback()
    assert deliver(engine, envelope) is True


@pytest.mark.parametrize("event_id", ["x" * 37, 12345])
def test_odd_event_ids_take_the_checked_path(engine, event_id):
    # Too long for the column, or not a string: MySQL's INSERT IGNORE would store a truncated id without a word,
    # so these go through the plain INSERT, which MariaDB (strict mode) refuses and SQLite stores as it is.
    envelope = {"event_id": event_id}
    try:
        first = deliver(engine, envelope)
    except DataError:
        assert engine.dialect.name == "mysql" and isinstance(event_id, str)
        return
    assert first is True
    assert deliver(engine, envelope) is False


def test_without_an_event_id_the_handler_runs(engine):
    assert deliver(engine, {}) is True
    assert deliver(engine, {}) is True


class Flaky:
    """Fails each event's first delivery with the error named in it, then applies it."""

    name = "flaky_listener"
    attempts = {}
    applied = []

    @domain_event_handler("flaky_source", "thing.happened")
    def on_thing(self, envelope):
        kind = envelope["data"]["error"]
        Flaky.attempts[kind] = Flaky.attempts.get(kind, 0) + 1
        if Flaky.attempts[kind] == 1:
            raise {"unavailable": DependencyUnavailable("products did not answer"),
                   "conflict": Conflict("already shipped"), "crash": RuntimeError("database blinked")}[kind]
        Flaky.applied.append(kind)


def test_handlers_retry_unavailable_dependencies_and_crashes_but_not_domain_errors(rabbit_config, container_factory):
    Flaky.attempts.clear()
    Flaky.applied.clear()
    container_factory(Flaky).start()
    dispatch = event_dispatcher()
    for kind in ("unavailable", "conflict", "crash"):
        dispatch("flaky_source", "thing.happened", {"event_id": str(uuid.uuid4()), "data": {"error": kind}})
    wait_until(lambda: sorted(Flaky.applied) == ["crash", "unavailable"], timeout=10,
               message="the retried events applied")
    assert Flaky.attempts == {"unavailable": 2, "conflict": 1, "crash": 2}
