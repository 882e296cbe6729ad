"""``Link``: a TCP forwarder from a free loopback port to a real server (RabbitMQ, MariaDB), that a test can cut
like a network partition: ``cut()`` drops every connection through it and refuses new ones, ``mend()`` lets them
through again. The server itself stays up for everyone else."""

import socket
from urllib.parse import urlsplit, urlunsplit

import eventlet

from scripts.tansu import free_port

DEFAULT_PORTS = {"amqp": 5672, "redis": 6379}


def link_to(uri):
    """A ``Link`` to the server ``uri`` names (amqp://, redis://): -> ``(link, uri)``, the uri now through it."""
    url = urlsplit(uri)
    link = Link(url.port or DEFAULT_PORTS[url.scheme], url.hostname)
    credentials = f"{url.username}:{url.password}@" if url.username else ""
    return link, urlunsplit(url._replace(netloc=f"{credentials}127.0.0.1:{link.port}"))


class Link:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.listener = eventlet.listen(("127.0.0.1", self.port))
        self.passing = True
        self.pairs = set()
        self.acceptor = eventlet.spawn(self._accept)

    def cut(self):
        self.passing = False
        for pair in list(self.pairs):
            self._drop(pair)

    def mend(self):
        self.passing = True

    def close(self):
        self.cut()
        self.acceptor.kill()
        self.listener.close()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            if not self.passing:
                client.close()
                continue
            try:
                upstream = eventlet.connect(self.target)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            self.pairs.add(pair)
            eventlet.spawn_n(self._pipe, client, upstream, pair)
            eventlet.spawn_n(self._pipe, upstream, client, pair)

    def _pipe(self, source, sink, pair):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except (OSError, EOFError):  # EOFError: eventlet's word for a socket the other direction closed
            pass
        self._drop(pair)
        # Each pipe closes only the socket it reads. Closing one another greenlet still waits on frees its fileno
        # under that wait: the next socket given the number then fails with "Second simultaneous read".
        source.close()

    def _drop(self, pair):
        if pair not in self.pairs:
            return
        self.pairs.discard(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # both pipes' recv return, and each closes its own socket
            except OSError:
                pass
