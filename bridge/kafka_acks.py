"""``AckWindow``: one ``basic.ack(multiple=True)`` per contiguous range of settled deliveries instead of one each.

Kafka confirms messages out of delivery order (across partitions, retries), so an ack with ``multiple=True`` up to
tag N is only sent once *every* outstanding tag up to N is settled: confirmed (to be acked) or released (already
requeued or rejected on its own, so the broker no longer counts it outstanding). One unconfirmed message holds the
whole range behind it until it settles. Tags are per channel, and the bridge consumes each shard on a channel of its
own, so there is one range per channel; a closed channel's range is dropped (``forget``): the broker requeued what
it held.
"""

import collections
import logging

from common.amqp import settle

log = logging.getLogger(__name__)


class _Range:
    def __init__(self):
        self.outstanding = collections.OrderedDict()   # delivery tag -> message, in delivery order
        self.confirmed = set()


class AckWindow:
    def __init__(self, spawn):
        self.spawn = spawn            # runs the flush soon, in the hub, once a burst of settlements is recorded
        self.ranges = {}              # channel -> _Range
        self.flush_due = False

    def received(self, message):
        """Every delivered message, in delivery order, before anything can settle it."""
        window = self.ranges.get(message.channel)
        if window is None:
            self._drop_closed()
            window = self.ranges[message.channel] = _Range()
        window.outstanding[message.delivery_tag] = message

    def confirm(self, message):
        """Ack ``message`` soon: with the next contiguous range it completes."""
        if (window := self._tracking(message)) is not None:
            window.confirmed.add(message.delivery_tag)
            self._schedule()

    def release(self, message):
        """``message`` was requeued or rejected on its own: it no longer holds the range behind it."""
        if (window := self._tracking(message)) is not None:
            del window.outstanding[message.delivery_tag]
            window.confirmed.discard(message.delivery_tag)
            self._schedule()

    @property
    def pending(self):
        return sum(len(window.outstanding) for window in self.ranges.values())

    def pending_on(self, channel):
        """Deliveries on ``channel`` not yet acked (confirmed ones count until their ack is sent) or released."""
        window = self.ranges.get(channel)
        return len(window.outstanding) if window is not None else 0

    def _tracking(self, message):
        window = self.ranges.get(message.channel)
        return window if window is not None and message.delivery_tag in window.outstanding else None

    def _drop_closed(self):
        for channel in [c for c in self.ranges if not c.is_open or not c.connection]:
            del self.ranges[channel]

    def _schedule(self):
        if not self.flush_due:
            self.flush_due = True
            self.spawn(self.flush)

    def flush(self):
        self.flush_due = False
        for window in self.ranges.values():
            self._flush(window)

    @staticmethod
    def _flush(window):
        last = None
        while window.outstanding:
            tag = next(iter(window.outstanding))
            if tag not in window.confirmed:
                break
            last = window.outstanding.pop(tag)
            window.confirmed.discard(tag)
        if last is not None:
            settle(last.ack, multiple=True)  # the broker requeues what a lost channel held; repeats are allowed
