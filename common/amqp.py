"""Nameko consumers that read the broker's socket ahead.

py-amqp reads each frame in three exact-size ``recv`` calls (header, payload, end byte), so one small message is
nine trips through eventlet's green socket and the kernel. Asking for at least ``READ_AHEAD_BYTES`` lets py-amqp's
own read buffer keep the rest for the next frames: usually one ``recv`` per message. Every consumer of ours (RPC
requests, RPC replies, events, the Kafka relay) reads this way.
"""

import functools

from amqp.transport import TCPTransport
from nameko.amqp.consume import Consumer

READ_AHEAD_BYTES = 4096  # several small messages per recv; more only copies more (py-amqp slices its buffer per read)


class ReadsAhead:
    """Mixin for ``nameko.amqp.consume.Consumer`` and its subclasses; applied after every (re)connection."""

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        read_ahead(connection.connection.transport)
        super().on_consume_ready(connection, channel, consumers, **kwargs)


class ReadAheadConsumer(ReadsAhead, Consumer):
    pass


def read_ahead(transport):
    if type(transport) is TCPTransport:  # TLS reads go through the SSL object: left as they are
        transport._quick_recv = functools.partial(_recv_at_least, transport.sock.recv)


def _recv_at_least(recv, size):
    return recv(max(size, READ_AHEAD_BYTES))
