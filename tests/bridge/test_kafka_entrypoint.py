"""The relay decodes AMQP bodies itself: the same envelope kombu would give, the same refusals."""

import json
from datetime import datetime

import pytest
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message
from kombu.utils.json import dumps as kombu_dumps

from bridge.kafka_entrypoint import decode_body
from tests.bridge.conftest import envelope


def amqp_message(body, content_type="application/json"):
    """A message as kombu hands it over: py-amqp has already turned a UTF-8 body into text."""
    message = Message(body=body, content_type=content_type, content_encoding="utf-8")
    message.accept = ["application/json"]
    return message


def test_an_envelope_decodes_as_kombu_decodes_it():
    event = envelope("order.paid", 12, {"id": 12, "status": "PAID", "total": "19.99", "name": "Café"}, "orders")
    message = amqp_message(kombu_dumps(event))
    assert decode_body(message) == event == amqp_message(kombu_dumps(event)).decode()


def test_a_body_with_kombus_typed_values_takes_kombus_path():
    moment = datetime(2026, 11, 25, 4, 0)
    message = amqp_message(kombu_dumps({**envelope("order.paid", 1, {}, "orders"), "when": moment}))
    assert decode_body(message)["when"] == moment


@pytest.mark.parametrize("body, content_type, error", [
    ('{"event_id": "broken', "application/json", DecodeError),
    ("", "application/json", None),
    ("\x80\x04K\x01.", "application/x-python-serialize", ContentDisallowed),
])
def test_what_kombu_refuses_is_refused_the_same_way(body, content_type, error):
    message = amqp_message(body, content_type)
    if error is None:
        assert decode_body(message) == amqp_message(body, content_type).decode()
        return
    with pytest.raises(error):
        decode_body(message)
    with pytest.raises(error):
        amqp_message(body, content_type).decode()


def test_bytes_bodies_are_left_to_kombu():
    event = envelope("stock.low", 3, {"product_id": 3}, "inventory")
    message = Message(body=json.dumps(event).encode(), content_type="application/json", content_encoding="binary")
    message.accept = ["application/json"]
    assert decode_body(message) == event
