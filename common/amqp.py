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
"""

import functools
import logging

from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.transport import TCPTransport
from kombu.exceptions import OperationalError as BrokerError
from nameko.amqp.consume import Consumer

log = logging.getLogger(__name__)

READ_AHEAD_BYTES = 4096  # several small messages per recv; more only copies more (py-amqp slices its buffer per read)
# what an ack or a publish meets when the broker has gone (kombu wraps the socket's errors in its OperationalError)
LOST_CONNECTION = (AmqpConnectionError, BrokerError, OSError)


class ReadsAhead:
    """Mixin for ``nameko.amqp.consume.Consumer`` and its subclasses; applied after every (re)connection."""

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        read_ahead(connection.connection.transport)
        super().on_consume_ready(connection, channel, consumers, **kwargs)


class SettlesSafely:
    """Mixin for ``nameko.amqp.consume.Consumer``: an ack or requeue on a lost connection is dropped (logged)."""

    def ack_message(self, message):
        settle(message.ack)

    def requeue_message(self, message):
        settle(message.requeue)


def settle(action, **kwargs):
    """``message.ack``/``requeue``/``reject`` unless its connection is gone; the broker redelivers it then."""
    if not action.__self__.channel.connection:
        return
    try:
        action(**kwargs)
    except LOST_CONNECTION as exc:
        log.warning("the broker connection was lost before %s (%r): it will deliver the message again",
                    action.__name__, exc)


class ReadAheadConsumer(ReadsAhead, SettlesSafely, Consumer):
    pass


def read_ahead(transport):
    if type(transport) is TCPTransport:  # TLS reads go through the SSL object: left as they are
        transport._quick_recv = functools.partial(_recv_at_least, transport.sock.recv)


def _recv_at_least(recv, size):
    return recv(max(size, READ_AHEAD_BYTES))
