"""What WatchStock streams: inventory's ``stock.*`` events, read from the broker by one consumer per process and
fanned out to every open stream, each with its own bounded queue.

The consumer thread never waits for a stream: a stream whose queue is full (its client reads slower than stock
changes) is ended with ``RESOURCE_EXHAUSTED`` and resumes from the versions it saw. The consumer's queue is this
process's own (exclusive, gone with its connection), so after a broker reconnect every open stream is ended with
``UNAVAILABLE``: changes may have been missed in between, and a resumed stream starts from the current levels.
Accounts' ``user.deleted`` comes in on the same queue and locks the account out of the API at once.
"""

import asyncio
import logging
import threading
import uuid

from grpc import StatusCode
from kombu import Connection, Consumer, Queue
from nameko.standalone.events import get_event_exchange

log = logging.getLogger(__name__)

STOCK_CHANGES = ("stock.updated", "stock.reserved", "stock.released", "stock.committed")
RECONNECT_DELAY = 1.0
BROKER_QUEUE_LIMIT = 100_000


class StreamEnded(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Stream:
    """One WatchStock call's queue of stock levels; ``product_ids`` None watches every product."""

    def __init__(self, product_ids, size):
        self.product_ids = product_ids
        self.queue = asyncio.Queue(size + 1)  # the last place is for the end marker
        self.size = size
        self.ended = None

    def wants(self, product_id):
        return self.product_ids is None or product_id in self.product_ids

    def offer(self, level):
        if self.ended is None and self.queue.qsize() >= self.size:
            self.end(StatusCode.RESOURCE_EXHAUSTED,
                     f"The stream fell more than {self.size} changes behind; resume with after_versions.")
        if self.ended is None:
            self.queue.put_nowait(level)

    def end(self, code, message):
        if self.ended is not None:
            return
        self.ended = StreamEnded(code, message)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self):
        level = await self.queue.get()
        if level is None:
            raise self.ended
        return level


class Streams:
    """The open streams of this process; everything but ``publish``/``interrupt`` runs on the server's loop."""

    def __init__(self, loop, queue_size, most):
        self.loop = loop
        self.queue_size = queue_size
        self.most = most
        self.open = set()

    def add(self, product_ids):
        if len(self.open) >= self.most:
            raise StreamEnded(StatusCode.RESOURCE_EXHAUSTED, f"At most {self.most} streams are open at once.")
        stream = Stream(product_ids, self.queue_size)
        self.open.add(stream)
        return stream

    def remove(self, stream):
        self.open.discard(stream)

    def publish(self, level):
        """From the consumer thread."""
        self.loop.call_soon_threadsafe(self._fan_out, level)

    def interrupt(self, message):
        """From the consumer thread."""
        self.loop.call_soon_threadsafe(self._end_all, StatusCode.UNAVAILABLE, message)

    def _fan_out(self, level):
        for stream in list(self.open):
            if stream.wants(level["product_id"]):
                stream.offer(level)

    def _end_all(self, code, message):
        for stream in list(self.open):
            stream.end(code, message)


class EventFeed:
    """The consumer thread: ``stock.*`` -> ``streams.publish``, ``user.deleted`` -> ``forget_user``."""

    def __init__(self, amqp_uri, streams, forget_user):
        self.amqp_uri = amqp_uri
        self.streams = streams
        self.forget_user = forget_user
        self.stopping = threading.Event()
        self.consuming = threading.Event()
        self.thread = threading.Thread(target=self.run, name="inventory-grpc-events", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)

    def queue(self):
        return Queue(f"inventory_grpc.events-{uuid.uuid4().hex}", exclusive=True, auto_delete=True,
                     queue_arguments={"x-max-length": BROKER_QUEUE_LIMIT},
                     bindings=[*(binding(get_event_exchange("inventory"), event) for event in STOCK_CHANGES),
                               binding(get_event_exchange("accounts"), "user.deleted")])

    def run(self):
        first = True
        while not self.stopping.is_set():
            try:
                with Connection(self.amqp_uri, heartbeat=30) as connection:
                    self.consume(connection, first)
            except Exception as exc:  # the broker went away: reconnect, and tell the open streams
                log.warning("event feed lost the broker (%s); reconnecting", type(exc).__name__)
            if self.consuming.is_set():
                self.consuming.clear()
                self.streams.interrupt("The stock event feed was interrupted; resume with after_versions.")
            first = False
            self.stopping.wait(RECONNECT_DELAY)

    def consume(self, connection, first):
        with Consumer(connection, queues=[self.queue()], callbacks=[self.handle], accept=["json"]):
            self.consuming.set()
            if not first:
                log.info("event feed reconnected")
            while not self.stopping.is_set():
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    connection.heartbeat_check()

    def handle(self, envelope, message):
        message.ack()
        try:
            if envelope.get("event_type") == "user.deleted":
                self.forget_user(int(envelope["data"]["id"]))
            elif envelope.get("event_type") in STOCK_CHANGES:
                self.streams.publish(level_of(envelope))
        except (AttributeError, KeyError, TypeError, ValueError):
            log.warning("event feed skipped a malformed %s event", envelope.get("event_type") if
                        isinstance(envelope, dict) else "unknown")


def binding(exchange, routing_key):
    from kombu import binding as kombu_binding

    return kombu_binding(exchange, routing_key=routing_key)


def level_of(envelope):
    data = envelope["data"]
    return {"product_id": int(data["product_id"]), "on_hand": int(data["on_hand"]),
            "reserved": int(data["reserved"]), "available": int(data["available"]),
            "low_stock_threshold": int(data.get("low_stock_threshold") or 0), "version": int(data["version"]),
            "change": envelope["event_type"]}
