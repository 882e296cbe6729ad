"""Range acks against the real broker: nothing is acked while an earlier delivery is unsettled."""

import pytest
from kombu import Connection, Exchange, Queue
from nameko import config

from bridge.kafka_acks import AckWindow

QUEUE = Queue("acks_test", exchange=Exchange(""), routing_key="acks_test", durable=True)


@pytest.fixture
def deliveries(rabbit_config):
    """Five messages ``0``..``4`` taken from a queue (unacked) on a channel of their own."""
    with Connection(config["AMQP_URI"]) as connection:
        producer = connection.Producer()
        for number in range(5):
            producer.publish(str(number), exchange="", routing_key="acks_test", declare=[QUEUE], serializer="json")
    connection = Connection(config["AMQP_URI"])
    queue = QUEUE(connection.channel())
    messages = [queue.get(no_ack=False) for _ in range(5)]
    yield messages
    connection.release()


def settle(flushes):
    while flushes:
        flushes.pop(0)()


def left_in_queue(consumer_channel):
    """Closing the consumer's channel returns what it did not ack; returns the queue's bodies."""
    consumer_channel.close()
    with Connection(config["AMQP_URI"]) as connection:
        queue = QUEUE(connection.channel())
        bodies = []
        while (message := queue.get(no_ack=True)) is not None:
            bodies.append(message.payload)
        return sorted(bodies)


def test_a_range_is_acked_only_up_to_the_first_unsettled_delivery(deliveries):
    flushes = []
    window = AckWindow(flushes.append)
    for message in deliveries:
        window.received(message)

    for number in (1, 2, 4):
        window.confirm(deliveries[number])
    settle(flushes)
    assert window.pending == 5, "0 is unsettled: nothing behind it may be acked"

    deliveries[0].requeue()
    window.release(deliveries[0])
    settle(flushes)
    assert window.pending == 2, "1 and 2 acked; 3 unsettled holds 4"

    assert left_in_queue(deliveries[0].channel) == ["0", "3", "4"]


def test_once_every_delivery_is_confirmed_the_queue_is_empty(deliveries):
    flushes = []
    window = AckWindow(flushes.append)
    for message in deliveries:
        window.received(message)
    for message in reversed(deliveries):
        window.confirm(message)
    assert len(flushes) == 1, "one flush per burst of confirmations"
    settle(flushes)

    assert window.pending == 0
    assert left_in_queue(deliveries[0].channel) == []


def test_a_new_channel_starts_a_new_window(deliveries):
    flushes = []
    window = AckWindow(flushes.append)
    for message in deliveries[:2]:
        window.received(message)
    deliveries[0].channel.close()  # the connection was lost: the broker takes back all five
    with Connection(config["AMQP_URI"]) as other:
        redelivered = QUEUE(other.channel()).get(no_ack=False)
        window.received(redelivered)  # the same delivery tag as deliveries[0], on the new channel
        window.confirm(deliveries[1])  # from the old channel: ignored
        window.confirm(redelivered)
        settle(flushes)
        assert window.pending == 0
        assert left_in_queue(redelivered.channel) == ["1", "2", "3", "4"]


def test_each_channel_has_its_own_range(deliveries):
    """The bridge consumes each shard on a channel of its own: one shard's unconfirmed delivery holds no other's."""
    flushes = []
    window = AckWindow(flushes.append)
    for message in deliveries[:3]:
        window.received(message)
    with Connection(config["AMQP_URI"]) as other:
        for number in (5, 6):
            other.Producer().publish(str(number), exchange="", routing_key="acks_test", serializer="json")
        channel = other.channel()
        late = [QUEUE(channel).get(no_ack=False) for _ in range(2)]
        for message in late:
            window.received(message)
        window.confirm(late[0])
        window.confirm(late[1])
        settle(flushes)
        assert window.pending_on(channel) == 0, "the second channel's range is acked though the first one waits"
        assert window.pending_on(deliveries[0].channel) == 3
        assert window.pending == 3
