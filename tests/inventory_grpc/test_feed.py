"""The WatchStock fan-out on its own: a stream that falls behind is ended, the others keep every change."""

import asyncio

import pytest
from grpc import StatusCode

from inventory_grpc.feed import StreamEnded, Streams, level_of


def level(product_id, version):
    return {"product_id": product_id, "on_hand": version, "reserved": 0, "available": version,
            "low_stock_threshold": 5, "version": version, "change": "stock.updated"}


def test_a_full_stream_is_ended_and_the_others_get_every_change():
    async def scenario():
        streams = Streams(asyncio.get_running_loop(), queue_size=3, most=10)
        slow, keen, other = streams.add({1}), streams.add(None), streams.add({2})
        received = []
        for version in range(1, 6):
            streams._fan_out(level(1, version))
            received.append((await keen.next())["version"])
        with pytest.raises(StreamEnded) as ended:
            await slow.next()
        assert ended.value.code == StatusCode.RESOURCE_EXHAUSTED and "after_versions" in ended.value.message
        assert other.queue.empty()  # not a product it watches
        return received

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5]


def test_streams_are_bounded_in_number():
    async def scenario():
        streams = Streams(asyncio.get_running_loop(), queue_size=3, most=1)
        streams.add(None)
        with pytest.raises(StreamEnded) as refused:
            streams.add(None)
        return refused.value.code

    assert asyncio.run(scenario()) == StatusCode.RESOURCE_EXHAUSTED


def test_an_interruption_ends_every_stream_as_unavailable():
    async def scenario():
        streams = Streams(asyncio.get_running_loop(), queue_size=3, most=5)
        stream = streams.add({1})
        streams._end_all(StatusCode.UNAVAILABLE, "feed interrupted")
        with pytest.raises(StreamEnded) as ended:
            await stream.next()
        return ended.value.code

    assert asyncio.run(scenario()) == StatusCode.UNAVAILABLE


def test_a_stock_event_becomes_a_level():
    envelope = {"event_type": "stock.reserved", "data": {"product_id": "7", "on_hand": 9, "reserved": 2,
                                                         "available": 7, "low_stock_threshold": None, "version": 4,
                                                         "order_id": 3, "quantity": 2}}
    assert level_of(envelope) == {"product_id": 7, "on_hand": 9, "reserved": 2, "available": 7,
                                  "low_stock_threshold": 0, "version": 4, "change": "stock.reserved"}
