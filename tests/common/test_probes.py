"""Each process's probes on its metrics port (common.probes, common.health.Readiness), on real ``nameko run``
processes: ready only while its broker, its database and (the Kafka bridge) Kafka answer; alive throughout."""

import importlib
import uuid

import pytest
import requests
from nameko.containers import ServiceContainer
from sqlalchemy import create_engine

from bridge.kafka_producer import KafkaProducer
from common.cache import Cache
from common.db import Database
from common.health import Readiness
from payment_provider.client import PaymentProviderClient
from scripts.run_system import NAMEKO_PROCESSES
from scripts.tansu import free_port, launch
from tests.conftest import MYSQL, mysql_admin
from tests.netcut import Link
from tests.processes import Process
from tests.processes.journal import Base
from tests.support import wait_until

NEEDS = {"database": Database, "kafka": KafkaProducer, "payment_provider": PaymentProviderClient, "cache": Cache}
DATABASES = {"accounts", "products", "inventory", "orders", "notifications", "webhooks"}


def readiness(process):
    response = requests.get(f"{process.url}/health/ready", timeout=10)
    return response.status_code, response.json()


def checks(body, service):
    return {name: check["status"] for name, check in body["services"][service]["checks"].items()}


def ready_again(process, service):
    wait_until(lambda: readiness(process)[0] == 200, timeout=60, interval=0.5,
               message=f"{service} ready again ({process.log()[-2000:]})")


@pytest.fixture
def mysql_link():
    name = f"pos_t_{uuid.uuid4().hex[:10]}_journal"
    admin = mysql_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    auth = MYSQL["user"] + (f":{MYSQL['password']}" if MYSQL["password"] else "")
    direct = f"mysql+pymysql://{auth}@{MYSQL['host']}:{MYSQL['port']}/{name}"
    engine = create_engine(direct)
    Base.metadata.create_all(engine)
    engine.dispose()
    link = Link(MYSQL["port"], MYSQL["host"])
    yield link, f"mysql+pymysql://{auth}@127.0.0.1:{link.port}/{name}"
    link.close()
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def test_a_service_process_is_ready_only_while_its_broker_and_database_answer(tmp_path, broker_link, mysql_link):
    amqp, amqp_uri = broker_link
    database, db_uri = mysql_link
    process = Process(tmp_path, "journal", "tests.processes.journal", {
        "AMQP_URI": amqp_uri, "DB_URIS": {"journal:Base": db_uri}, "HEALTH_CHECK_TIMEOUT": 1})
    try:
        process.start()
        status, body = readiness(process)
        assert status == 200, body
        assert checks(body, "journal") == {"broker": "UP", "database": "UP"}

        database.cut()
        status, body = readiness(process)
        assert status == 503, body
        assert body["status"] == "DOWN"
        assert checks(body, "journal") == {"broker": "UP", "database": "DOWN"}
        assert body["services"]["journal"]["checks"]["database"]["error"]
        database.mend()
        ready_again(process, "journal")

        amqp.cut()
        wait_until(lambda: readiness(process)[0] == 503, timeout=15, message="unready without its broker")
        status, body = readiness(process)
        assert checks(body, "journal") == {"broker": "DOWN", "database": "UP"}
        assert "not consuming: rpc-journal" in body["services"]["journal"]["checks"]["broker"]["error"]
        assert requests.get(f"{process.url}/health", timeout=5).json() == {"status": "UP"}  # alive all along
        amqp.mend()
        ready_again(process, "journal")
        assert "pos_entrypoint_calls_total" in requests.get(f"{process.url}/metrics", timeout=5).text
    finally:
        process.stop()


def test_the_kafka_bridge_is_ready_only_once_its_producer_reaches_kafka(tmp_path, rabbit_config, rabbit_uri):
    kafka_port = free_port()
    process = Process(tmp_path, "kafka_bridge", "bridge.kafka_relay", {
        "AMQP_URI": rabbit_uri, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}", "HEALTH_CHECK_TIMEOUT": 1})
    kafka = None
    try:
        process.start(wait_for=(503,))
        status, body = readiness(process)
        assert checks(body, "kafka_bridge") == {"broker": "UP", "kafka": "DOWN"}, body

        kafka = launch(kafka_port, log_path=tmp_path / "tansu.log")
        ready_again(process, "kafka_bridge")
        status, body = readiness(process)
        assert checks(body, "kafka_bridge") == {"broker": "UP", "kafka": "UP"}
        assert "broker(s)" in body["services"]["kafka_bridge"]["checks"]["kafka"]["detail"]
    finally:
        process.stop()
        if kafka is not None:
            kafka.terminate()
            kafka.wait(10)


@pytest.mark.parametrize(("process", "module"), [p for p in NAMEKO_PROCESSES if p[0] != "gateway"])
def test_every_service_process_checks_what_it_needs_to_work(rabbit_config, process, module):
    module_name, class_name = module.split(":")
    service = getattr(importlib.import_module(module_name), class_name)
    extensions = ServiceContainer(service).extensions
    needs = {name for name, kind in NEEDS.items() if any(isinstance(e, kind) for e in extensions)}

    assert any(isinstance(e, Readiness) for e in extensions)
    assert ("database" in needs) is (process in DATABASES)
    assert ("kafka" in needs) is (process == "kafka_bridge")
    assert ("payment_provider" in needs) is (process == "payments")
