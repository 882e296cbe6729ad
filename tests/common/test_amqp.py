"""Every AMQP consumer of every service goes through common.amqp: it reads ahead, wakes seldom when idle, settles
safely (nameko's own consumers wake every second and read a frame in three calls)."""

import importlib

import pytest
from nameko import config
from nameko.amqp.consume import Consumer
from nameko.containers import ServiceContainer

from common import amqp
from scripts.run_system import NAMEKO_PROCESSES


def service_class(path):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", [path for _, path in NAMEKO_PROCESSES])
def test_every_consumer_of_every_service_is_ours(path):
    with config.patch({"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672//"}):
        container = ServiceContainer(service_class(path))
    consumer_classes = {type(extension).__name__: extension.consumer_cls for extension in container.extensions
                        if issubclass(getattr(extension, "consumer_cls", object), Consumer)}

    assert consumer_classes  # every service has at least its RPC consumer
    not_ours = {name: cls.__name__ for name, cls in consumer_classes.items()
                if not (issubclass(cls, amqp.WakesSeldom) and issubclass(cls, amqp.ReadsAhead))}
    assert not_ours == {}
