"""JSON log lines, one object a line, that let one request be followed by its id through every service."""

import io
import json
import logging
import logging.config
from pathlib import Path

import pytest
import requests
from eventlet.event import Event
from nameko.cli.utils.config import load_config
from nameko.events import EventDispatcher, event_handler

from common.correlation import CorrelationId
from common.health import Operational
from common.logging import JsonFormatter, WorkerContextFilter
from common.rpc import ServiceRpc, rpc
from gateway.http import api
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("tests.follow")
heard = Event()


class Front(Operational):
    name = "front"
    correlation = CorrelationId()
    back_rpc = ServiceRpc("back")

    @api("GET", "/follow")
    def follow(self, request):
        log.info("front got the request")
        return {"answer": self.back_rpc.work()}


class Back(Operational):
    name = "back"
    correlation = CorrelationId()
    dispatch = EventDispatcher()

    @rpc
    def work(self):
        log.info("back did the work")
        self.dispatch("worked", {"done": True})
        return "done"


class Audit(Operational):
    name = "audit"
    correlation = CorrelationId()

    @event_handler("back", "worked")
    def on_worked(self, payload):
        log.warning("audit heard it", extra={"done": payload["done"]})
        heard.send(True)


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(WorkerContextFilter())
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    log.removeHandler(handler)


def test_a_request_is_followed_by_its_id_through_every_service(
        rabbit_config, web_config, web_config_port, container_factory, json_lines):
    global heard
    heard = Event()
    for cls in (Audit, Back, Front):
        container_factory(cls).start()

    response = requests.get(f"http://127.0.0.1:{web_config_port}/follow",
                            headers={"X-Request-ID": "req-follow-1"}, timeout=10)
    heard.wait()

    assert response.json() == {"answer": "done"}
    assert response.headers["X-Request-ID"] == "req-follow-1"
    lines = json_lines()
    assert [(line["service"], line["message"]) for line in lines] == [
        ("front", "front got the request"), ("back", "back did the work"), ("audit", "audit heard it")]
    for line in lines:
        assert line["correlation_id"] == line["request_id"] == "req-follow-1"
        assert line["logger"] == "tests.follow"
        assert line["timestamp"].endswith("Z")
    assert [line["entrypoint"] for line in lines] == ["follow", "work", "on_worked"]
    assert lines[2]["level"] == "WARNING" and lines[2]["done"] is True


def test_outside_a_worker_the_process_service_name_is_used(json_lines, monkeypatch):
    monkeypatch.setenv("SERVICE_NAME", "orders")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed")

    [line] = json_lines()
    assert line["service"] == "orders"
    assert line["correlation_id"] is None
    assert line["level"] == "ERROR"
    assert "ValueError: bad" in line["exc_info"]


@pytest.mark.parametrize("environment", ["dev", "uat", "prod"])
def test_the_config_logging_section_writes_json_lines(environment, capsys, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    with open(ROOT / "config" / f"{environment}.yml") as handle:
        logging_config = load_config(handle)["LOGGING"]
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logging_config)
        logging.getLogger("tests.config").info("configured %s", environment)
    finally:
        root.handlers[:], root.level = saved

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == f"configured {environment}"
    assert {"timestamp", "level", "service", "logger", "correlation_id", "request_id"} <= set(line)


def test_every_handled_call_logs_one_line_with_the_request_id(
        rabbit_config, web_config, web_config_port, container_factory):
    global heard
    heard = Event()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(WorkerContextFilter())
    handler.setFormatter(JsonFormatter())
    worker_log = logging.getLogger("pos.worker")
    worker_log.addHandler(handler)
    worker_log.setLevel(logging.INFO)
    try:
        for cls in (Audit, Back, Front):
            container_factory(cls).start()
        requests.get(f"http://127.0.0.1:{web_config_port}/follow", headers={"X-Request-ID": "req-follow-2"},
                     timeout=10)
        heard.wait()
        # each worker logs its line as it ends, after its reply or signal went out
        wait_until(lambda: all(f'"{name}"' in stream.getvalue() for name in ("follow", "work", "on_worked")),
                   message="every worker's line")
    finally:
        worker_log.removeHandler(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    handled = {(line["service"], line["entrypoint"], line["outcome"]) for line in lines
               if line["correlation_id"] == "req-follow-2"}
    assert handled == {("front", "follow", "ok"), ("back", "work", "ok"), ("audit", "on_worked", "ok")}
    assert all(isinstance(line["duration_ms"], float) for line in lines)
