"""Nameko consumers that read the broker's socket ahead, and settle messages without dying of a lost connection.

py-amqp reads each frame in three exact-size ``recv`` calls (header, payload, end byte), so one small message is
nine trips through eventlet's green socket and the kernel. Asking for at least ``READ_AHEAD_BYTES`` lets py-amqp's
own read buffer keep the rest for the next frames: usually one ``recv`` per message. Every consumer of ours (RPC
requests, RPC replies, events, the Kafka relay) reads this way.

Nameko skips the ack of a message whose connection is known closed, and swallows py-amqp's ``ConnectionError``,
but the socket's own errors (``ConnectionResetError``, ``BrokenPipeError``) escape the worker and kill the
container: a broker outage in the middle of a handler stopped the whole process. The broker requeues every
message an unacked channel held, and handlers drop repeats, so an ack or a requeue that cannot reach the broker
needs no retry.

Nameko closes a consumer's connection as soon as it is stopped, while workers it started are still running: their
acks were dropped and the broker delivered those messages again (a command a worker had carried out, run twice).
``Drains`` keeps the connection until every message the consumer took is settled, and tells readiness whether the
consumer is consuming.

kombu's consume loop wakes every second with nothing to read, to look at its stop flag and send heartbeats: 167 us
of CPU a wake on this machine, and nameko 3 gives every entrypoint a connection of its own (41 in a running
system), so 7 ms of CPU a second at rest. ``WakesSeldom`` lets it sleep ``IDLE_WAKE_SECONDS``: a message still
wakes it at once, and a stop with messages in flight is seen at the next one.
"""

import contextlib
import functools
import logging

from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.transport import TCPTransport
from kombu.exceptions import OperationalError as BrokerError
from nameko.amqp.consume import Consumer

log = logging.getLogger(__name__)

READ_AHEAD_BYTES = 4096  # several small messages per recv; more only copies more (py-amqp slices its buffer per read)
UNSETTLED = "pos_unsettled"  # on a channel: the delivery tags its consumer took and nobody has acked or requeued yet
# what an ack or a publish meets when the broker has gone (kombu wraps the socket's errors in its OperationalError)
LOST_CONNECTION = (AmqpConnectionError, BrokerError, OSError)
# heartbeats go out every heartbeat / 2 seconds of silence (py-amqp), so a wake at most every heartbeat / 4 keeps them
# in time; the broker drops a connection silent for two heartbeats
IDLE_WAKE_SECONDS = 10.0


class ReadsAhead:
    """Mixin for ``nameko.amqp.consume.Consumer`` and its subclasses; applied after every (re)connection."""

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        read_ahead(connection.connection.transport)
        super().on_consume_ready(connection, channel, consumers, **kwargs)


class WakesSeldom:
    """Mixin for ``nameko.amqp.consume.Consumer``: with nothing to read, its loop wakes every ``IDLE_WAKE_SECONDS``
    (kombu's ``safety_interval``; 1 s by default), or every heartbeat / 4 if that is sooner."""

    def consume(self, *args, safety_interval=None, **kwargs):
        return super().consume(*args, safety_interval=idle_wake_seconds(self.heartbeat), **kwargs)


def idle_wake_seconds(heartbeat):
    return min(IDLE_WAKE_SECONDS, heartbeat / 4) if heartbeat else IDLE_WAKE_SECONDS


class Drains:
    """Mixin for ``nameko.amqp.consume.Consumer``: on ``stop()`` it takes no more messages (it cancels its
    subscriptions; what the broker had already sent is requeued) and closes its connection only once every message
    it took is settled. ``consuming``: connected, subscribed and not stopping (``common.health.Readiness``)."""

    stop_requested = False
    channel_in_use = None
    subscriptions = ()

    @property
    def should_stop(self):  # what kombu's consume loop and nameko's ``run`` ask
        return self.stop_requested and not getattr(self.channel_in_use, UNSETTLED, None)

    @should_stop.setter
    def should_stop(self, value):  # nameko's ``stop()`` sets it
        self.stop_requested = value

    @property
    def consuming(self):
        return self.channel_in_use is not None and not self.stop_requested

    @contextlib.contextmanager
    def extra_context(self, connection, channel):
        setattr(channel, UNSETTLED, set())
        self.channel_in_use = channel
        try:
            yield
        finally:
            # the broker requeues what a lost channel held: nothing is left to settle on it
            self.channel_in_use = self.subscriptions = None

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.subscriptions = consumers
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    def on_iteration(self):
        if self.stop_requested and self.subscriptions:
            subscriptions, self.subscriptions = self.subscriptions, None
            for subscription in subscriptions:
                subscription.cancel()

    def took(self, message):
        """Call first for every message received; settled by ``settle``."""
        if not self.consumer_options.get("no_ack"):
            getattr(message.channel, UNSETTLED, set()).add(message.delivery_tag)

    def on_message(self, body, message):
        self.took(message)
        if self.stop_requested:
            self.requeue_message(message)
            return
        for callback in self.callbacks:
            callback(body, message)


class SettlesSafely:
    """Mixin for ``nameko.amqp.consume.Consumer``: an ack or requeue on a lost connection is dropped (logged)."""

    def ack_message(self, message):
        settle(message.ack)

    def requeue_message(self, message):
        settle(message.requeue)


def settle(action, **kwargs):
    """``message.ack``/``requeue``/``reject`` unless its connection is gone; the broker redelivers it then."""
    message = action.__self__
    if not message.channel.connection:
        return
    try:
        action(**kwargs)
    except LOST_CONNECTION as exc:
        log.warning("the broker connection was lost before %s (%r): it will deliver the message again",
                    action.__name__, exc)
    forget(message, kwargs.get("multiple", False))


def forget(message, multiple):
    unsettled = getattr(message.channel, UNSETTLED, None)
    if not unsettled:
        return
    if multiple:
        unsettled.difference_update([tag for tag in unsettled if tag <= message.delivery_tag])
    else:
        unsettled.discard(message.delivery_tag)


class ReadAheadConsumer(Drains, WakesSeldom, ReadsAhead, SettlesSafely, Consumer):
    pass


def read_ahead(transport):
    if type(transport) is TCPTransport:  # TLS reads go through the SSL object: left as they are
        transport._quick_recv = functools.partial(_recv_at_least, transport.sock.recv)


def _recv_at_least(recv, size):
    return recv(max(size, READ_AHEAD_BYTES))
