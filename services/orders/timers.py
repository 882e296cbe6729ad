"""Timing the orders service needs: a timer whose interval is config, and polling with a deadline."""

import time

import eventlet
from nameko import config
from nameko.timer import Timer


class ConfigTimer(Timer):
    """``@timer`` whose interval is read from config when the container starts (not when the module is imported)."""

    def __init__(self, config_key, default, **kwargs):
        self.config_key = config_key
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = float(config.get(self.config_key) or self.interval)
        super().setup()


config_timer = ConfigTimer.decorator


def wait_for(predicate, timeout, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        eventlet.sleep(interval)
