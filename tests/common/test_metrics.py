"""One ``Metrics()`` declaration measures entrypoints, database statements, the cache, the outbox and domain events."""

import json
import re
from pathlib import Path

import pytest
import requests
from nameko import config
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcClient
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, String
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session
from werkzeug.wrappers import Response

import bridge.kafka_metrics  # noqa: F401  -- the Kafka relay's metrics, queried by the dashboard
from common.cache import Cache
from common.correlation import CorrelationId
from common.db import Database, make_engine
from common.errors import DependencyUnavailable, NotFound
from common.events import make_envelope
from common.health import Operational
from common.metrics import Metrics, outcome_of
from common.outbox import Outbox, OutboxMessageMixin
from common.rpc import rpc
from scripts.tansu import free_port
from tests.support import wait_until

SERVICE = "metered_notes"


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "metered_notes"
    id = Column(Integer, primary_key=True)
    text = Column(String(50))


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class MeteredNotes(Operational):
    name = SERVICE
    db = Database(Base)
    outbox = Outbox(OutboxMessage)
    cache = Cache()
    correlation = CorrelationId()
    metrics = Metrics()

    @rpc
    def write(self, text):
        with self.db.get_session() as session:
            note = Note(text=text)
            session.add(note)
            session.flush()
            self.outbox.add(session, "note.written", note.id, {"text": text})
            return note.id

    @rpc
    def read(self, note_id):
        return self.cache.get_or_load(f"note:{note_id}", lambda: self._load(note_id))

    @rpc
    def missing(self):
        raise NotFound("no such note", code="note_not_found")

    @rpc
    def broken(self):
        raise ValueError("a bug")

    @rpc
    def database_down(self):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused"))

    def _load(self, note_id):
        with self.db.get_session() as session:
            return {"id": note_id, "text": session.get(Note, note_id).text}


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, {"service": SERVICE, **labels}) or 0.0


@pytest.fixture
def metrics_port():
    return free_port()


@pytest.fixture
def notes_config(rabbit_config, db_uris, metrics_port):
    uri = db_uris["products:Base"]
    engine = make_engine(uri)
    Base.metadata.create_all(engine)
    engine.dispose()
    settings = {"DB_URIS": {f"{SERVICE}:Base": uri}, "OUTBOX_POLL_INTERVAL": 60, "METRICS_PORT": metrics_port,
                "CACHE_TTL_SECONDS": 600, "serializer": "json"}
    with config.patch(settings):
        yield uri


@pytest.fixture
def notes(notes_config, container_factory):
    container = container_factory(MeteredNotes)
    container.start()
    with ServiceRpcClient(SERVICE) as client:
        yield client, notes_config


def test_entrypoint_calls_latency_and_errors_by_outcome(notes):
    client, _ = notes
    calls = {outcome: sample("pos_entrypoint_calls_total", entrypoint=entrypoint, kind="rpc", outcome=outcome)
             for outcome, entrypoint in (("success", "ping"), ("domain_error", "missing"), ("error", "broken"))}
    latency_count = sample("pos_entrypoint_latency_seconds_count", entrypoint="ping", kind="rpc")

    assert client.ping() == "pong"
    with pytest.raises(NotFound):
        client.missing()
    with pytest.raises(RemoteError):
        client.broken()

    # the reply leaves before the worker's result reaches the metrics provider: wait for the counts
    for outcome, entrypoint in (("success", "ping"), ("domain_error", "missing"), ("error", "broken")):
        wait_until(lambda o=outcome, e=entrypoint: sample("pos_entrypoint_calls_total", entrypoint=e, kind="rpc",
                                                          outcome=o) == calls[o] + 1,
                   message=f"{entrypoint} counted as {outcome}")
    assert sample("pos_entrypoint_errors_total", entrypoint="broken", error="ValueError") >= 1
    wait_until(lambda: sample("pos_entrypoint_latency_seconds_count", entrypoint="ping", kind="rpc")
               == latency_count + 1, message="ping latency observed")


def test_an_infrastructure_failure_counts_as_this_services_error(notes):
    client, _ = notes
    errors = sample("pos_entrypoint_errors_total", entrypoint="database_down", error="OperationalError")

    with pytest.raises(DependencyUnavailable):  # what the caller gets (common.rpc)
        client.database_down()

    wait_until(lambda: sample("pos_entrypoint_errors_total", entrypoint="database_down", error="OperationalError")
               == errors + 1, message="the OperationalError counted")
    assert sample("pos_entrypoint_calls_total", entrypoint="database_down", kind="rpc", outcome="error") >= 1


def test_database_statements_are_timed_by_verb(notes):
    client, _ = notes
    inserts = sample("pos_db_statement_seconds_count", statement="INSERT")

    client.write("timed")

    assert sample("pos_db_statement_seconds_count", statement="INSERT") >= inserts + 2  # the note and its event
    assert sample("pos_db_statement_seconds_sum", statement="INSERT") > 0


def test_cache_hits_and_misses(notes):
    client, _ = notes
    note_id = client.write("cached")
    hits, misses = sample("pos_cache_requests_total", result="hits"), sample("pos_cache_requests_total",
                                                                             result="misses")
    assert client.read(note_id) == client.read(note_id) == {"id": note_id, "text": "cached"}

    assert sample("pos_cache_requests_total", result="misses") == misses + 1
    assert sample("pos_cache_requests_total", result="hits") == hits + 1


def test_outbox_backlog_and_published_domain_events(notes):
    client, uri = notes
    published = REGISTRY.get_sample_value("pos_domain_events_total",
                                          {"source": SERVICE, "event_type": "note.written"}) or 0.0

    def events_published():
        return (REGISTRY.get_sample_value("pos_domain_events_total",
                                          {"source": SERVICE, "event_type": "note.written"}) or 0.0) - published

    client.write("first")
    # the relay counts an event when the broker confirmed it, and marks its row sent just after
    wait_until(lambda: events_published() == 1 and sample("pos_outbox_backlog") == 0,
               message="the first event published and marked sent")
    engine = make_engine(uri)
    with Session(engine) as session, session.begin():  # rows the relay has not seen yet: it sleeps 60 s
        for i in range(3):
            envelope = make_envelope("note.written", i, {"text": f"left {i}"}, source=SERVICE)
            session.add(OutboxMessage(event_id=envelope["event_id"], event_type="note.written",
                                      aggregate_id=str(i), envelope=json.dumps(envelope)))
    engine.dispose()

    assert sample("pos_outbox_backlog") == 3

    client.write("wakes the relay")
    wait_until(lambda: events_published() == 5 and sample("pos_outbox_backlog") == 0,
               message="every event published and marked sent")


def test_each_process_exports_its_registry_on_metrics_port(notes, metrics_port):
    client, _ = notes
    client.ping()

    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text

    assert f'pos_entrypoint_calls_total{{entrypoint="ping",kind="rpc",outcome="success",service="{SERVICE}"}}' \
        in text
    assert "pos_outbox_backlog" in text


@pytest.mark.parametrize(("result", "exc_info", "outcome"), [
    ({"id": 1}, None, "success"),
    ((404, {"error": {}}), None, "client_error"),
    ((503, {}, {"status": "DOWN"}), None, "error"),
    (None, (NotFound, NotFound("x"), None), "domain_error"),
    (None, (ValueError, ValueError("x"), None), "error"),
    (Response(status=404), (NotFound, NotFound("x"), None), "client_error"),  # the gateway's answer counts
    (Response(status=503), (DependencyUnavailable, DependencyUnavailable("x"), None), "error"),
])
def test_outcome_of_a_worker_result(result, exc_info, outcome):
    assert outcome_of(result, exc_info) == outcome


def test_the_grafana_dashboard_queries_only_metrics_that_exist(notes):
    # the cache and outbox families are collected from the providers of running containers
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs/grafana/pos-dashboard.json").read_text())
    queried = {re.sub(r"_(total|bucket|count|sum)$", "", name)
               for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\bpos_[a-z_]+", target["expr"])}
    defined = {family.name for family in REGISTRY.collect()}
    assert queried and queried <= defined, queried - defined


def test_a_stopped_container_leaves_no_live_figures(notes_config, container_factory):
    first, second = container_factory(MeteredNotes), container_factory(MeteredNotes)
    first.start()
    second.start()  # the same service twice in one process: no clash in the registry
    assert sample("pos_outbox_backlog") == 0

    first.stop()
    second.stop()

    assert REGISTRY.get_sample_value("pos_outbox_backlog", {"service": SERVICE}) is None
    assert REGISTRY.get_sample_value("pos_cache_requests_total", {"service": SERVICE, "result": "hits"}) is None
