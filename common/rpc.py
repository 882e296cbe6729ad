"""RPC between our processes: the ``rpc`` entrypoint every service declares, and ``ServiceRpc`` with a deadline.

Nameko persists and confirms both the request and the reply of every call: two broker round trips a hop spends
waiting, the larger part of its cost (bench/analysis.md). A call is at most once from the caller's side anyway: a
lost request or reply ends in the caller's deadline, which it reports as ``DependencyUnavailable`` (503 at the
gateway) and the client retries. So replies go out transient and unconfirmed, and so do requests once the target's
queue has taken one confirmed and ``mandatory`` request: a service that never ran is still ``UnknownService`` at
once rather than a timeout. Events keep confirms and persistence (the outbox's publisher).

Every service must take ``rpc`` from here, ``ping`` included (``common.health.Operational``): two consumer classes on
one ``rpc-<service>`` queue would each answer the other's methods with ``MethodNotFound``. A worker that fails on
infrastructure (its database or the broker down, a timeout) answers ``DependencyUnavailable``
(``common.errors.as_domain_error``), so callers never interpret other libraries' exception names. A reply the
broker cannot take (it is down) is dropped, not fatal: the caller's deadline answers for it.
"""

import functools
import logging

import eventlet
import eventlet.corolocal
from nameko import config
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
)
from nameko.exceptions import UnknownService
from nameko.rpc import ReplyListener as NamekoReplyListener
from nameko.rpc import Responder as NamekoResponder
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcConsumer as NamekoRpcConsumer
from nameko.rpc import ServiceRpc as NamekoServiceRpc
from nameko.rpc import get_rpc_exchange

from common import tracing
from common.amqp import LOST_CONNECTION, Drains, ReadAheadConsumer, ReadsAhead, WakesSeldom
from common.errors import DependencyUnavailable, DomainError, as_domain_error
from common.replicas import POSITIONS_KEY, merge_positions

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# Publisher.publish writes ``confirm_publish`` into the transport options it is given: one dict per value keeps a
# shared default dict from flipping under a connection another greenlet is opening (kombu pools by these options).
CONFIRMED = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": True}
UNCONFIRMED = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": False}


class ReplyPublisher(Publisher):
    use_confirms = False
    delivery_mode = NON_PERSISTENT
    transport_options = UNCONFIRMED


class ReplyPublisherWithPositions(ReplyPublisher):
    """Adds the worker's database positions (common.replicas, read-your-writes) to the reply payload."""

    def __init__(self, *args, positions=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.positions = positions

    def publish(self, payload, **kwargs):
        super().publish({**payload, POSITIONS_KEY: self.positions}, **kwargs)


class Responder(NamekoResponder):
    publisher_cls = ReplyPublisher

    def __init__(self, *args, positions=None, **kwargs):
        super().__init__(*args, **kwargs)
        if positions:
            self.publisher_cls = functools.partial(ReplyPublisherWithPositions, positions=positions)


class RpcConsumer(NamekoRpcConsumer):
    consumer_cls = ReadAheadConsumer

    def handle_result(self, message, result, exc_info, positions=None):
        responder = Responder(self.amqp_uri, get_rpc_exchange(), message, ssl=config.get(AMQP_SSL_CONFIG_KEY),
                              login_method=config.get(LOGIN_METHOD_CONFIG_KEY), positions=positions)
        try:
            result, exc_info = responder.send_response(result, exc_info)
        except LOST_CONNECTION as exc:
            # Nameko lets this kill the container: a broker outage stopped every process that was answering.
            # The caller meets its deadline instead, as for any lost reply.
            log.warning("could not reply to %s: the broker is unreachable (%r)",
                        message.properties.get("correlation_id"), exc)
        self.consumer.ack_message(message)
        return result, exc_info


class Rpc(NamekoRpc):
    """``@rpc``, or ``@rpc(read_only=True)`` for a query: its database sessions read from a replica when the
    service has fit ones (``common.db.Database``), and may not write."""

    rpc_consumer = RpcConsumer()

    def __init__(self, read_only=False, **kwargs):
        self.read_only = read_only
        super().__init__(**kwargs)

    def handle_result(self, message, worker_ctx, result, exc_info):
        reply = reply_error(worker_ctx, exc_info)
        result, sent = self.rpc_consumer.handle_result(message, result, reply, worker_ctx.data.get(POSITIONS_KEY))
        # The container's providers still see the worker's own failure: metrics and the worker's log line count
        # a database outage as this service's error, not as a domain error.
        return result, exc_info if sent is reply else sent


def reply_error(worker_ctx, exc_info):
    """The error the caller gets: an infrastructure failure as ``DependencyUnavailable``, anything else as is."""
    if exc_info is None or isinstance(exc_info[1], DomainError):
        return exc_info
    error = as_domain_error(exc_info[1])
    if error is None:
        return exc_info
    # nameko has logged the traceback already; this line ties it to the answer the caller got
    log.warning("%s answers DependencyUnavailable for %r", worker_ctx.call_id, exc_info[1])
    return type(error), error, exc_info[2]


rpc = Rpc.decorator


class RequestPublisher(Publisher):
    """Requests: confirmed, ``mandatory`` and declaring the caller's reply queue until one has been routed, then
    none of that.

    Nameko declares the reply queue before every request, and kombu never caches that declaration (the queue
    expires, ``x-expires``): an exchange.declare, a queue.declare and a queue.bind, three round trips to the broker
    that every hop waited for. The reply listener declares the queue itself whenever its consumer (re)connects,
    and it only expires after minutes without one, so after the first request it is there while anyone listens.
    """

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
        self.declare = []


class ReplyListener(NamekoReplyListener):
    """Nameko's, reading ahead, without acks, and with no lost-reply check before its first consume: nameko starts
    every extension at once, so a request can come in (an HTTP call during start-up) and register for its reply
    before this listener has declared its queue; the check then finds the queue "expired" and kills the container.
    Nothing can have been lost before the first consume."""

    def setup(self):
        super().setup()
        self.registering = eventlet.corolocal.local()

    def register_for_reply(self, correlation_id):
        self.registering.correlation_id = correlation_id
        return super().register_for_reply(correlation_id)

    def forget_last_call(self):
        """Stop waiting for the reply to the calling greenlet's last call (it failed, or its deadline passed)."""
        self.pending.pop(getattr(self.registering, "correlation_id", None), None)

    def check_for_lost_replies(self):
        if self.consumer.ready.is_set():
            super().check_for_lost_replies()

    class ReplyConsumer(Drains, WakesSeldom, ReadsAhead, NamekoReplyListener.ReplyConsumer):
        """Replies are consumed without acks: one message less per call, and an ack protects nothing here (the
        reply queue is this process's own; a reply it never reads is a deadline either way)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.consumer_options["no_ack"] = True

    consumer_cls = ReplyConsumer


class ServiceRpc(NamekoServiceRpc):
    """``ServiceRpc("products")``: calls wait at most ``timeout`` (``RPC_TIMEOUT_SECONDS``, default 10) seconds;
    no answer, or no such service, is ``DependencyUnavailable``."""

    publisher_cls = RequestPublisher
    reply_listener = ReplyListener()

    def __init__(self, target_service, timeout=None, **kwargs):
        self.timeout = timeout
        super().__init__(target_service, **kwargs)

    def setup(self):
        super().setup()
        if self.timeout is None:
            self.timeout = float(config.get("RPC_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT)
        # A request its caller stopped waiting for is dropped by the broker rather than run late: a command run
        # after its caller gave up (a stock reservation after the order was abandoned) would belong to nobody.
        self.publisher.expiration = self.timeout

    def get_dependency(self, worker_ctx):
        # Built on first use: a worker gets every client its service declares, and most use one or none.
        return TimedClient(lambda: super(ServiceRpc, self).get_dependency(worker_ctx), self.timeout,
                           self.reply_listener, worker_ctx.data)


class TimedClient:
    """Calls with a deadline; the database positions a reply brings (a write's) join the worker's context data,
    so its later calls, and the gateway's per-client memory, carry them (common.replicas)."""

    def __init__(self, make_client, timeout, reply_listener, context_data):
        self._make_client = make_client
        self._client = None
        self._timeout = timeout
        self._reply_listener = reply_listener
        self._context_data = context_data

    def __getattr__(self, method_name):
        if self._client is None:
            self._client = self._make_client()
        method = getattr(self._client, method_name)

        def call(*args, **kwargs):
            with tracing.outgoing(method.identifier, method.context_data):  # the request carries this span
                return self._send_and_wait(method, args, kwargs)

        return call

    def _send_and_wait(self, method, args, kwargs):
        # The deadline covers sending the request too: with the broker down, kombu retries the publish for
        # seconds before it gives up, and a request that got through after that still waited for its reply.
        timer = eventlet.Timeout(self._timeout)
        try:
            reply = method.call_async(*args, **kwargs)
            merge_positions(self._context_data, reply.get_response().get(POSITIONS_KEY))
            return reply.result()
        except UnknownService:
            self._reply_listener.forget_last_call()
            raise DependencyUnavailable(f"{method.identifier}: the service is not running.") from None
        except eventlet.Timeout as exc:
            self._reply_listener.forget_last_call()
            if exc is not timer:
                raise
            raise DependencyUnavailable(f"{method.identifier} did not answer within {self._timeout:g}s.") from None
        except Exception:
            self._reply_listener.forget_last_call()
            raise
        finally:
            timer.cancel()


class ThreadedRpc:
    """RPC for a process that is not Nameko (the inventory gRPC server's threads): ``ThreadedRpc("inventory")``,
    then ``rpc.get_stock(1)`` from any thread. The same deadline (``RPC_TIMEOUT_SECONDS``) and the same errors as
    ``ServiceRpc``: domain errors as themselves, no answer or no such service as ``DependencyUnavailable``.

    nameko's standalone client is single-threaded, so each thread gets its own (its own reply queue), and one that
    failed on the broker is dropped and built again on the next call. Its requests go out as ``ServiceRpc``'s do
    (``RequestPublisher``: confirmed and declaring the reply queue only until the first one was routed)."""

    def __init__(self, target_service, timeout=None):
        import threading

        self.target_service = target_service
        self.timeout = timeout
        self.local = threading.local()
        self.lock = threading.Lock()
        self.clients = []

    def __getattr__(self, method_name):
        if method_name.startswith("_"):
            raise AttributeError(method_name)

        def call(*args, **kwargs):
            standalone = self._client()
            try:
                return getattr(standalone.client, method_name)(*args, **kwargs)
            except DomainError:
                raise
            except Exception as exc:
                error = as_domain_error(exc)
                if error is None:
                    raise
                self._drop(standalone)
                raise DependencyUnavailable(f"{self.target_service}.{method_name}: {type(exc).__name__}") from exc

        return call

    def _client(self):
        standalone = getattr(self.local, "client", None)
        if standalone is None:
            timeout = self.timeout or float(config.get("RPC_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT)
            standalone = StandaloneClient(self.target_service, timeout=timeout, expiration=timeout)
            try:
                standalone.start()
            except Exception as exc:
                raise as_domain_error(exc) or exc from exc
            self.local.client = standalone
            with self.lock:
                self.clients.append(standalone)
        return standalone

    def _drop(self, standalone):
        self.local.client = None
        with self.lock:
            if standalone in self.clients:
                self.clients.remove(standalone)
        try:
            standalone.stop()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            log.debug("closing a broken RPC client failed", exc_info=True)

    def close(self):
        with self.lock:
            clients, self.clients = self.clients, []
        for standalone in clients:
            try:
                standalone.stop()
            except Exception:
                log.debug("closing an RPC client failed", exc_info=True)


def _standalone_client_class():
    from nameko.standalone.rpc import ServiceRpcClient as NamekoStandaloneClient

    class StandaloneClient(NamekoStandaloneClient):
        publisher_cls = RequestPublisher

    return StandaloneClient


StandaloneClient = _standalone_client_class()
