"""``AckWindow``: one ``basic.ack(multiple=True)`` per contiguous range of settled deliveries instead of one each.

Kafka confirms messages out of delivery order (across partitions, retries), so an ack with ``multiple=True`` up to
tag N is only sent once *every* outstanding tag up to N is settled: confirmed (to be acked) or released (already
requeued or rejected on its own, so the broker no longer counts it outstanding). One unconfirmed message holds the
whole range behind it until it settles. Tags are per channel: a new channel (after a reconnection) starts a new
window, and what the old one held is redelivered by the broker anyway.
"""

import collections
import logging

from common.amqp import settle

log = logging.getLogger(__name__)


class AckWindow:
    def __init__(self, spawn):
        self.spawn = spawn            # runs the flush soon, in the hub, once a burst of settlements is recorded
        self.channel = None
        self.outstanding = collections.OrderedDict()   # delivery tag -> message, in delivery order
        self.confirmed = set()
        self.flush_due = False

    def received(self, message):
        """Every delivered message, in delivery order, before anything can settle it."""
        if message.channel is not self.channel:
            self.channel = message.channel
            self.outstanding.clear()
            self.confirmed.clear()
        self.outstanding[message.delivery_tag] = message

    def confirm(self, message):
        """Ack ``message`` soon: with the next contiguous range it completes."""
        if self._tracked(message):
            self.confirmed.add(message.delivery_tag)
            self._schedule()

    def release(self, message):
        """``message`` was requeued or rejected on its own: it no longer holds the range behind it."""
        if self._tracked(message):
            del self.outstanding[message.delivery_tag]
            self.confirmed.discard(message.delivery_tag)
            self._schedule()

    @property
    def pending(self):
        return len(self.outstanding)

    def _tracked(self, message):
        return message.channel is self.channel and message.delivery_tag in self.outstanding

    def _schedule(self):
        if not self.flush_due:
            self.flush_due = True
            self.spawn(self.flush)

    def flush(self):
        self.flush_due = False
        last = None
        while self.outstanding:
            tag = next(iter(self.outstanding))
            if tag not in self.confirmed:
                break
            last = self.outstanding.pop(tag)
            self.confirmed.discard(tag)
        if last is not None:
            settle(last.ack, multiple=True)  # the broker requeues what a lost channel held; repeats are allowed
