"""The bridge's shards, and how replicas share them.

Every ``<service>.events`` exchange is bound to the consistent-hash exchange ``kafka_bridge.shards``, which spreads
events by their ``aggregate_id`` header over ``KAFKA_BRIDGE_SHARDS`` durable queues, each declared
``x-single-active-consumer``: every replica subscribes to every shard and RabbitMQ delivers a shard to one of them
at a time, so one aggregate's events are produced by one process, in order.

RabbitMQ 3.10 makes the first consumer registered on a queue the active one and never moves it, so without more the
first replica would hold every shard. ``Membership`` gives each replica the set of live replicas (heartbeats on a
fanout exchange) and bounded rendezvous hashing names one owner per shard (``assign_shards``). A replica that
receives a shard it does not own hands it over (``ShardConsumer``): it stops producing that shard, waits until
Kafka confirmed (and it acked) what it already produced, then closes the shard's channel. Closing the channel,
unlike ``basic.cancel``, returns the unacked deliveries to the head of the queue in the same step that activates the
next consumer, so the next holder starts exactly where this one stopped: one key is never reordered on Kafka. The
replica subscribes again at the back of the line, as a standby for takeover.
"""

import hashlib
import logging
import time
import uuid
from contextlib import contextmanager

import eventlet
from amqp.exceptions import ChannelError
from kombu import Connection, Exchange, Queue
from kombu import Consumer as KombuConsumer
from nameko import config
from nameko.amqp.consume import Consumer as ConsumerCore
from nameko.extensions import Extension
from nameko.standalone.events import get_event_exchange

from bridge.kafka_metrics import SHARD_HANDOVERS, SHARDS_HELD
from common.amqp import ReadsAhead, SettlesSafely, WakesSeldom
from common.events import AGGREGATE_HEADER

log = logging.getLogger(__name__)

QUEUE_NAME = "kafka_bridge.events"  # the single queue of bridges before sharding: drained, never bound again
SHARD_EXCHANGE = "kafka_bridge.shards"
SHARD_QUEUE = QUEUE_NAME + ".{:02d}"
MEMBERS_EXCHANGE = "kafka_bridge.members"
ALIVE_HEARTBEATS = 3.0    # a replica unheard for this many heartbeats is gone
FRESH_HEARTBEATS = 1.5    # shards are handed only to a replica heard this recently (not to one just killed)


def shard_exchange():
    """Consistent hashing on the ``aggregate_id`` header: one aggregate's events always reach the same shard."""
    return Exchange(SHARD_EXCHANGE, type="x-consistent-hash", durable=True,
                    arguments={"hash-header": AGGREGATE_HEADER})


def shard_count():
    return int(config.get("KAFKA_BRIDGE_SHARDS", 16))


def shard_queues(shards=None):
    """``kafka_bridge.events.NN``: each with one active consumer at a time, so a shard is relayed in order."""
    exchange = shard_exchange()
    return [Queue(SHARD_QUEUE.format(i), exchange=exchange, routing_key="1", durable=True,
                  queue_arguments={"x-single-active-consumer": True})
            for i in range(shard_count() if shards is None else shards)]


def declare_shards(connection, source_services, shards=None):
    """Binds every ``<service>.events`` exchange to the shard exchange and declares the shard queues.

    Returns the old single queue if it still exists (a bridge before sharding left it): it is unbound, so it only
    drains what it held at the upgrade.
    """
    channel = connection.default_channel
    exchange = shard_exchange()(channel)
    exchange.declare()
    for name in source_services:
        source = get_event_exchange(name)(channel)
        source.declare()
        exchange.bind_to(source, routing_key="#")
    for queue in shard_queues(shards):
        queue(channel).declare()
    try:
        channel.queue_declare(QUEUE_NAME, passive=True)
    except ChannelError:
        return None
    channel = connection.channel()
    for name in source_services:
        channel.queue_unbind(QUEUE_NAME, get_event_exchange(name).name, routing_key="#")
    return Queue(QUEUE_NAME, durable=True)


def _rank(shard, member):
    return hashlib.blake2b(f"{member}/{shard}".encode(), digest_size=8).digest()


def assign_shards(shards, members):
    """One owner per shard: rendezvous hashing (each shard prefers the members in its own hash order) bounded so
    every member owns ``shards // len(members)`` or one more. Every replica computes the same list from the same
    members, and when one leaves mostly its own shards move."""
    members = sorted(set(members))
    base, extra = divmod(shards, len(members))
    load = dict.fromkeys(members, 0)
    owners = [None] * shards
    preferences = [sorted(members, key=lambda member: _rank(shard, member), reverse=True) for shard in range(shards)]
    for shard in range(shards):  # a shard's first choice keeps it while that member is under its share
        if load[first := preferences[shard][0]] < base:
            owners[shard], load[first] = first, load[first] + 1
    for bound in (base, base + 1):  # then the rest, to the best-ranked member still under the bound
        for shard in [s for s in range(shards) if owners[s] is None]:
            if bound > base and extra == 0:
                break
            member = next((m for m in preferences[shard] if load[m] < bound), None)
            if member is not None:
                owners[shard], load[member] = member, load[member] + 1
                extra -= bound > base
    return owners


class Membership(Extension):
    """The live bridge replicas, from heartbeats every ``KAFKA_BRIDGE_HEARTBEAT`` seconds on a fanout exchange.

    ``owners[shard]`` is recomputed once per heartbeat, not per event.
    """

    def setup(self):
        self.me = uuid.uuid4().hex[:12]
        self.interval = float(config.get("KAFKA_BRIDGE_HEARTBEAT", 1.0))
        self.amqp_uri = self.container.config["AMQP_URI"]
        self.heard = {}
        self.owners = [self.me] * shard_count()
        self.members = frozenset([self.me])
        self.stopping = False

    def start(self):
        self.container.spawn_managed_thread(self.run, identifier="Membership.run")

    def stop(self):
        self.stopping = True
        try:
            with Connection(self.amqp_uri, connect_timeout=2) as connection:
                self._announce(connection.Producer(), leaving=True)
        except (OSError, *Connection().connection_errors):
            log.warning("could not announce this replica's leaving; the others will time it out")

    def owns(self, shard):
        return self.owners[shard] == self.me

    def fresh(self, member):
        return member == self.me or time.monotonic() - self.heard.get(member, 0) < FRESH_HEARTBEATS * self.interval

    def run(self):
        while not self.stopping:
            try:
                with Connection(self.amqp_uri, heartbeat=0) as connection:
                    self._beat(connection)
            except (OSError, *Connection().connection_errors) as exc:
                log.warning("bridge membership lost its broker connection (%r); retrying", exc)
                eventlet.sleep(self.interval)

    def _beat(self, connection):
        exchange = Exchange(MEMBERS_EXCHANGE, type="fanout", durable=False)
        inbox = Queue(f"{MEMBERS_EXCHANGE}.{self.me}", exchange=exchange, exclusive=True, auto_delete=True)
        producer = connection.Producer()
        with KombuConsumer(connection.channel(), [inbox], callbacks=[self.on_heartbeat], no_ack=True,
                           accept=["json"]):
            while not self.stopping:
                self._announce(producer)
                self._recompute()
                deadline = time.monotonic() + self.interval
                while (left := deadline - time.monotonic()) > 0 and not self.stopping:
                    try:
                        connection.drain_events(timeout=left)
                    except TimeoutError:
                        pass

    def _announce(self, producer, leaving=False):
        producer.publish({"member": self.me, "leaving": leaving}, exchange=MEMBERS_EXCHANGE, routing_key="",
                         serializer="json", declare=[Exchange(MEMBERS_EXCHANGE, type="fanout", durable=False)])

    def on_heartbeat(self, body, message):
        member = body.get("member") if isinstance(body, dict) else None
        if not member or member == self.me:
            return
        if body.get("leaving"):
            self.heard.pop(member, None)
            self._recompute()
        else:
            self.heard[member] = time.monotonic()

    def _recompute(self):
        now = time.monotonic()
        gone = [m for m, at in self.heard.items() if now - at >= ALIVE_HEARTBEATS * self.interval]
        for member in gone:
            del self.heard[member]
        members = frozenset([self.me, *self.heard])
        if members != self.members:  # a second's beat usually changes nothing: the owners stay as they are
            self.owners, self.members = assign_shards(len(self.owners), members), members


class ShardConsumer(WakesSeldom, ReadsAhead, SettlesSafely, ConsumerCore):
    """One channel per shard (so a shard can be handed over alone), plus the legacy queue on the default channel.

    Hands the entrypoint kombu's messages undecoded. ``accepts(message)`` tells the entrypoint whether to relay a
    delivery; one on a shard this replica does not own starts the handover, done between two socket reads
    (``on_iteration``, in the consuming greenlet, the only one that may open or close channels).
    """

    membership = None               # set by the entrypoint: a ``Membership``
    pending = None                  # set by the entrypoint: pending(channel), deliveries on it not yet settled

    def __init__(self, amqp_uri, **kwargs):
        self.legacy_channel = None      # the default channel, consuming the pre-sharding queue if it is left
        self.shards = {}                # shard -> its kombu consumer
        self.shard_of = {}              # channel -> shard, for the channels consuming now
        self.releasing = set()
        self.held = set()               # shards this replica relayed since it last handed them over
        super().__init__(amqp_uri, **kwargs)

    @property
    def consuming(self):
        """For readiness (``common.health``): subscribed to the shards over a live connection, and not stopping."""
        return not self.should_stop and any(
            consumer.channel.connection is not None and consumer.channel.connection.connected
            for consumer in self.shards.values())

    @property
    def shard_prefetch(self):
        return max(1, -(-self.prefetch_count // max(1, shard_count())))

    def get_consumers(self, consumer_cls, channel):
        for state in (self.shards, self.shard_of, self.releasing, self.held):  # a reconnection starts afresh
            state.clear()
        self.legacy_channel = None
        legacy = [queue for queue in self.queues if not queue.name.startswith(QUEUE_NAME + ".")]
        consumers = []
        if legacy:
            self.legacy_channel = channel
            consumers.append(self._consumer(channel, legacy))
            consumers[-1].qos(prefetch_count=self.prefetch_count)
        for shard, queue in enumerate(q for q in self.queues if q not in legacy):
            self.shards[shard] = self._shard_consumer(channel.connection.channel(), shard, queue)
            consumers.append(self.shards[shard])
        return consumers

    def _consumer(self, channel, queues):
        return KombuConsumer(channel, queues=queues, on_message=self.on_raw_message, accept=self.accept,
                             **self.consumer_options)

    def _shard_consumer(self, channel, shard, queue):
        consumer = self._consumer(channel, [queue])
        consumer.qos(prefetch_count=self.shard_prefetch)
        self.shard_of[channel] = shard
        return consumer

    @contextmanager
    def _consume_from(self, *consumers):
        for consumer in consumers:
            consumer.consume()
        try:
            yield consumers
        finally:
            for consumer in [c for c in consumers if c not in self.shards.values()] + list(self.shards.values()):
                try:
                    consumer.cancel()
                except Exception:  # a channel the broker or a handover already closed
                    pass

    def on_raw_message(self, message):
        if self.should_stop:
            self.requeue_message(message)
            return
        for callback in self.callbacks:
            callback(message)

    def accepts(self, message):
        if message.channel is self.legacy_channel:
            return True
        shard = self.shard_of.get(message.channel)
        if shard is None or shard in self.releasing:  # None: a channel being handed over; it requeues them
            return False
            return False
        owner = self.membership.owners[shard]
        if owner != self.membership.me and self.membership.fresh(owner):
            self.releasing.add(shard)
            return False
        if shard not in self.held:
            self.held.add(shard)
            SHARDS_HELD.set(len(self.held))
        return True

    def on_iteration(self):
        for shard in [s for s in self.releasing if not self.pending(self.shards[s].channel)]:
            self._hand_over(shard)

    def _hand_over(self, shard):
        old = self.shards[shard]
        connection = old.channel.connection
        del self.shard_of[old.channel]
        try:
            old.channel.close()  # requeues what this replica held but never produced, ahead of the rest
        except Exception as exc:
            log.warning("closing shard %02d's channel failed (%r); the broker requeues on its own", shard, exc)
        self.releasing.discard(shard)
        self.held.discard(shard)
        SHARDS_HELD.set(len(self.held))
        SHARD_HANDOVERS.inc()
        log.info("handed shard %02d over to replica %s", shard, self.membership.owners[shard])
        if connection is None or not connection.connected:
            return  # the connection is going: the reconnection subscribes again
        self.shards[shard] = self._shard_consumer(connection.channel(), shard, old.queues[0])
        self.shards[shard].consume()
