"""TLS: the server speaks it with the configured cert and key, and refuses to start without them where it is on."""

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.tansu import free_port
from tests.support import wait_until
from tests.system.conftest import CONFIG, ROOT


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def server(system, address, **env):
    return subprocess.Popen([sys.executable, "-m", "inventory_grpc.server", "--config", str(CONFIG), "--address",
                             address], cwd=ROOT, env={**system.env, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def serving(channel):
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.RpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def test_with_a_cert_and_key_it_speaks_tls_only(system, certificate):
    cert, key = certificate
    address = f"127.0.0.1:{free_port()}"
    process = server(system, address, INVENTORY_GRPC_TLS="true", INVENTORY_GRPC_TLS_CERT=str(cert),
                     INVENTORY_GRPC_TLS_KEY=str(key))
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(address, credentials) as channel:
            wait_until(lambda: serving(channel) or process.poll() is not None, timeout=60,
                       message="the TLS server to serve")
            assert process.poll() is None and serving(channel)
        with grpc.insecure_channel(address) as plaintext:
            with pytest.raises(grpc.RpcError) as caught:
                health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        process.terminate()
        process.wait(30)


def test_where_tls_is_on_it_does_not_start_without_a_cert(system):
    process = server(system, f"127.0.0.1:{free_port()}", INVENTORY_GRPC_TLS="true", INVENTORY_GRPC_TLS_CERT="",
                     INVENTORY_GRPC_TLS_KEY="")
    out, _ = process.communicate(timeout=60)
    assert process.returncode != 0 and "INVENTORY_GRPC_TLS" in out


def test_uat_and_prod_turn_tls_on():
    for environment in ("uat", "prod"):
        text = (ROOT / "config" / f"{environment}.yml").read_text()
        assert "INVENTORY_GRPC_TLS: ${INVENTORY_GRPC_TLS:true}" in text
