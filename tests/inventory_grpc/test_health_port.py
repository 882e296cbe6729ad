"""The inventory gRPC API's health: SERVING only while its event feed consumes (its broker connection is up), and
served alone in plaintext on ``INVENTORY_GRPC_HEALTH_ADDRESS`` for kubelet's gRPC probe while the API speaks TLS."""

import os
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from inventory_grpc.server import SERVICE_NAME
from scripts.tansu import free_port
from tests.inventory_grpc.test_tls import certificate  # noqa: F401  -- a fixture
from tests.support import wait_until
from tests.system.conftest import CONFIG, ROOT

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def status(channel, service=""):
    try:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=2).status
    except grpc.RpcError as exc:
        return exc.code()


def test_the_health_port_says_serving_only_while_the_event_feed_consumes(broker_link, certificate):  # noqa: F811
    link, amqp_uri = broker_link
    cert, key = certificate
    address, health_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "AMQP_URI": amqp_uri,
           "INVENTORY_GRPC_HEALTH_ADDRESS": health_address, "INVENTORY_GRPC_TLS": "true",
           "INVENTORY_GRPC_TLS_CERT": str(cert), "INVENTORY_GRPC_TLS_KEY": str(key)}
    process = subprocess.Popen([sys.executable, "-m", "inventory_grpc.server", "--config", str(CONFIG),
                                "--address", address], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(health_address) as channel:
            wait_until(lambda: status(channel) == SERVING or process.poll() is not None, timeout=60,
                       message="serving")
            assert status(channel) == status(channel, SERVICE_NAME) == SERVING
            with pytest.raises(grpc.RpcError):  # the plaintext port carries the health service only
                channel.unary_unary(f"/{SERVICE_NAME}/GetStock")(b"", timeout=2)

            link.cut()
            wait_until(lambda: status(channel) == NOT_SERVING, timeout=15, message="not serving without a broker")
            link.mend()
            wait_until(lambda: status(channel) == SERVING, timeout=30, message="serving again")
        with grpc.insecure_channel(address) as plaintext:  # the API itself still speaks TLS only
            assert status(plaintext) == grpc.StatusCode.UNAVAILABLE
    finally:
        process.terminate()
        process.wait(30)
