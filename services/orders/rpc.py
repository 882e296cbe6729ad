"""Nameko plumbing the orders service needs: RPC calls with a deadline, and a timer whose interval is config.

Nameko 3 waits for an RPC reply without limit; a saga step that waits forever on a stuck service would hold its
worker (and the reconciler's timer) for good. A call that does not answer in ``RPC_TIMEOUT_SECONDS``, or a service
that is not running, is ``DependencyUnavailable``.
"""

import time

import eventlet
from nameko import config
from nameko.exceptions import UnknownService
from nameko.rpc import ServiceRpc
from nameko.timer import Timer

from common.errors import DependencyUnavailable

DEFAULT_RPC_TIMEOUT = 10.0


class TimedRpc(ServiceRpc):
    def setup(self):
        super().setup()
        self.timeout = float(config.get("RPC_TIMEOUT_SECONDS") or DEFAULT_RPC_TIMEOUT)

    def get_dependency(self, worker_ctx):
        return TimedClient(super().get_dependency(worker_ctx), self.timeout, self.reply_listener)


class TimedClient:
    def __init__(self, client, timeout, reply_listener):
        self._client = client
        self._timeout = timeout
        self._reply_listener = reply_listener

    def __getattr__(self, method_name):
        method = getattr(self._client, method_name)

        def call(*args, **kwargs):
            try:
                reply = method.call_async(*args, **kwargs)
            except UnknownService:
                raise DependencyUnavailable(f"{method.identifier}: the service is not running.") from None
            timer = eventlet.Timeout(self._timeout)
            try:
                return reply.result()
            except eventlet.Timeout as exc:
                if exc is not timer:
                    raise
                self._reply_listener.pending.pop(reply.correlation_id, None)
                raise DependencyUnavailable(f"{method.identifier} did not answer within {self._timeout}s.") from None
            finally:
                timer.cancel()

        return call


class ConfigTimer(Timer):
    """``@timer`` whose interval is read from config when the container starts (not when the module is imported)."""

    def __init__(self, config_key, default, **kwargs):
        self.config_key = config_key
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = float(config.get(self.config_key) or self.interval)
        super().setup()


config_timer = ConfigTimer.decorator


def wait_for(predicate, timeout, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        eventlet.sleep(interval)
