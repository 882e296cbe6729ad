"""Event handlers apply each event once: the processed-event record commits with the handler's first transaction,
also when deliveries repeat, race or fail half way, on both databases; infrastructure errors requeue."""

import uuid

import pytest
from nameko import config
from nameko.standalone.events import event_dispatcher
from sqlalchemy import Column, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase

from common.db import Database, make_engine
from common.errors import Conflict, DependencyUnavailable
from common.events import ProcessedEventMixin, can_record, domain_event_handler, record_delivery
from tests.support import wait_until


class Base(DeclarativeBase):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Applied(Base):
    __tablename__ = "applied"
    id = Column(Integer, primary_key=True, autoincrement=True)
    event_id = Column(String(36), nullable=True)


@pytest.fixture
def engine(db_uris):
    engine = make_engine(db_uris["products:Base"])
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def record(engine, event_id, handler="apply"):
    with engine.begin() as connection:
        return record_delivery(connection, ProcessedEvent.__table__, event_id, handler)


def test_the_first_record_wins_and_each_handler_has_its_own(engine):
    event_id = str(uuid.uuid4())
    assert record(engine, event_id) is True
    assert record(engine, event_id) is False
    assert record(engine, event_id, handler="another_handler") is True


def test_a_record_whose_transaction_rolled_back_is_forgotten(engine):
    event_id = str(uuid.uuid4())
    with engine.connect() as connection:
        with connection.begin() as transaction:
            assert record_delivery(connection, ProcessedEvent.__table__, event_id, "apply") is True
            transaction.rollback()
    assert record(engine, event_id) is True


@pytest.mark.parametrize("event_id", [None, "", 12345, "x" * 37])
def test_ids_that_do_not_fit_the_table_are_not_recorded(event_id):
    assert not can_record(event_id)


class Ledger:
    """Writes one row per event it applies; ``fail_once`` events crash after writing, in the same transaction."""

    name = "ledger"
    db = Database(Base, handled_events=ProcessedEvent)
    failed = set()

    @domain_event_handler("till", "sale.made")
    def apply_sale(self, envelope):
        with self.db.get_session() as session:
            session.add(Applied(event_id=envelope.get("event_id")))
            session.flush()
            if envelope["data"].get("fail_once") and envelope["event_id"] not in Ledger.failed:
                Ledger.failed.add(envelope["event_id"])
                raise RuntimeError("the database blinked")


@pytest.fixture
def ledger(rabbit_config, db_uris, engine, container_factory):
    Ledger.failed.clear()
    with config.patch({"DB_URIS": {"ledger:Base": db_uris["products:Base"]}, "max_workers": 10}):
        container = container_factory(Ledger)
        container.start()
        yield container


def applied(engine, event_id):
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Applied).where(Applied.event_id == event_id))


def sale(event_id, **data):
    event_dispatcher()("till", "sale.made", {"event_id": event_id, "data": data})


def test_a_repeated_or_racing_event_is_applied_once(ledger, engine):
    event_id = str(uuid.uuid4())
    for _ in range(5):  # delivered at once: the deliveries race for the record
        sale(event_id)
    marker = str(uuid.uuid4())
    sale(marker)  # one queue, in order: once this is applied, the repeats before it have been handled
    wait_until(lambda: applied(engine, marker) == 1, message="the later event")
    wait_until(lambda: applied(engine, event_id) == 1, message="the event")
    assert applied(engine, event_id) == 1
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ProcessedEvent)
                                 .where(ProcessedEvent.event_id == event_id)) == 1


def test_a_delivery_that_failed_half_way_leaves_no_record_and_is_applied_on_redelivery(ledger, engine):
    event_id = str(uuid.uuid4())
    sale(event_id, fail_once=True)
    wait_until(lambda: applied(engine, event_id) == 1, message="the redelivered event applied")
    assert event_id in Ledger.failed


def test_an_event_without_a_usable_id_is_applied_every_time(ledger, engine):
    for _ in range(2):
        event_dispatcher()("till", "sale.made", {"event_id": None, "data": {}})
    wait_until(lambda: _count_null(engine) == 2, message="both applied")


def _count_null(engine):
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Applied).where(Applied.event_id.is_(None)))


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
