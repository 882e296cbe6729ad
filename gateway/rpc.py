"""Nameko's ``ServiceRpc`` with a deadline, so a stuck service answers 503 instead of holding the client forever.

Nameko 3 waits for an RPC reply without limit; the gateway is the edge where a bounded wait matters.
``RPC_TIMEOUT_SECONDS`` (default 10) sets it; ``RpcTimeout`` maps to 503 ``service_unavailable``.

Requests go out as transient messages and, once a service's queue has taken one, without publisher confirms
(``RequestPublisher``): a lost request is already that timeout, so a confirm per request (the larger part of a
hop's cost, see bench/analysis.md) buys nothing. Until then requests are confirmed and ``mandatory``, so a
service that never ran is still ``UnknownService`` at once rather than a timeout. Events keep confirms and
persistence (their publishers are nameko's defaults and the outbox's).
"""

import eventlet
from nameko import config
from nameko.amqp.publish import Publisher
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS, NON_PERSISTENT
from nameko.exceptions import RpcTimeout
from nameko.rpc import ServiceRpc as NamekoServiceRpc

DEFAULT_TIMEOUT = 10.0
# Publisher.publish writes ``confirm_publish`` into the transport options it is given; one dict per value keeps
# it from flipping under a connection another greenlet is opening (kombu pools connections by these options).
CONFIRMED = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": True}
UNCONFIRMED = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": False}


class RequestPublisher(Publisher):
    delivery_mode = NON_PERSISTENT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.routed = False

    def publish(self, payload, **kwargs):
        if self.routed:
            kwargs.update(mandatory=False, use_confirms=False, transport_options=UNCONFIRMED)
            return super().publish(payload, **kwargs)
        super().publish(payload, use_confirms=True, transport_options=CONFIRMED, **kwargs)
        self.routed = True


class ServiceRpc(NamekoServiceRpc):
    publisher_cls = RequestPublisher

    def __init__(self, target_service, timeout=None, **kwargs):
        self.timeout = timeout
        super().__init__(target_service, **kwargs)

    def setup(self):
        super().setup()
        if self.timeout is None:
            self.timeout = float(config.get("RPC_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT)

    def get_dependency(self, worker_ctx):
        # Built on first use: every request gets every client, and most use one or none.
        return TimedClient(lambda: super(ServiceRpc, self).get_dependency(worker_ctx), self.timeout,
                           self.reply_listener)


class TimedClient:
    def __init__(self, make_client, timeout, reply_listener):
        self._make_client = make_client
        self._client = None
        self._timeout = timeout
        self._reply_listener = reply_listener

    def __getattr__(self, method_name):
        if self._client is None:
            self._client = self._make_client()
        method = getattr(self._client, method_name)

        def call(*args, **kwargs):
            reply = method.call_async(*args, **kwargs)
            timer = eventlet.Timeout(self._timeout)
            try:
                return reply.result()
            except eventlet.Timeout as exc:
                if exc is not timer:
                    raise
                self._reply_listener.pending.pop(reply.correlation_id, None)
                raise RpcTimeout(f"{method.identifier} did not answer within {self._timeout}s") \
                    from None
            finally:
                timer.cancel()

        call.call_async = method.call_async
        return call
