"""The Nameko dependency that calls the payment provider: nameko-grpc's ``GrpcProxy`` (green, unlike a grpcio
stub, which would block the eventlet hub), with a connection that survives the provider going away.

nameko-grpc connects at container start and reconnects in a managed thread, so a provider that is down at start,
or killed later, takes the whole container down with it. Here the connection opens on first use and reopens after
it dies; a provider that cannot be reached is a ``GrpcError(UNAVAILABLE)`` for that one call.
"""

import functools
import socket

from eventlet.semaphore import Semaphore
from grpc import StatusCode
from nameko import config
from nameko_grpc.connection import ClientConnectionManager, ConnectionTerminatingError
from nameko_grpc.dependency_provider import GrpcProxy
from nameko_grpc.errors import GrpcError

from common.health import check_grpc
from payment_provider import protos

CONNECT_TIMEOUT = 2.0
RETRYABLE = (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED)


class ProviderChannel:
    def __init__(self, address, spawn_thread):
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.spawn_thread = spawn_thread
        self.connection = None
        self.lock = Semaphore()

    def start(self):
        pass

    def stop(self):
        if self.connection is not None and self.connection.alive:
            self.connection.stop()

    def send_request(self, request_headers):
        try:
            return self.connect().send_request(request_headers)
        except ConnectionTerminatingError:
            return self.connect(fresh=True).send_request(request_headers)

    def connect(self, fresh=False):
        with self.lock:
            if fresh or self.connection is None or not self.connection.alive:
                self.connection = self.open()
            return self.connection

    def open(self):
        try:
            sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise GrpcError(StatusCode.UNAVAILABLE, f"payment provider unreachable: {exc}") from exc
        sock.settimeout(60)
        connection = ClientConnectionManager(sock)
        self.spawn_thread(target=connection.run_forever, name="payment provider connection")
        return connection


class PaymentProviderClient(GrpcProxy):
    """``provider.Authorize(request, timeout=...)`` etc.; messages are in ``PaymentProviderClient.messages``."""

    messages, grpc_module = protos()

    def __init__(self, **kwargs):
        super().__init__("//127.0.0.1:50051", self.grpc_module.PaymentProviderStub, **kwargs)

    def setup(self):
        address = config.get("PAYMENT_PROVIDER_ADDRESS", "127.0.0.1:50051")
        self.target = f"//{address}"

    def start(self):
        self.channel = ProviderChannel(self.target[2:], self.spawn_thread)

    def readiness_checks(self, timeout):
        """For ``common.health.Readiness``: the provider completes an HTTP/2 handshake (what a call needs first)."""
        return {"payment_provider": functools.partial(check_grpc, self.target[2:], timeout)}
