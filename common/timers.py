"""Timing: a Nameko timer whose interval is config, and polling with a deadline."""

import time

import eventlet
from nameko import config
from nameko.timer import Timer


class ConfigTimer(Timer):
    """``@timer`` whose interval is read from config when the container is set up (not when the module is imported);
    ``default`` when the key is missing or empty."""

    def __init__(self, config_key, default, **kwargs):
        self.config_key = config_key
        super().__init__(interval=default, **kwargs)

    def setup(self):
        value = config.get(self.config_key)
        # an unset ``${VAR:}`` in the YAML config arrives as ""
        if value not in (None, ""):
            self.interval = float(value)
        super().setup()


config_timer = ConfigTimer.decorator


def wait_for(predicate, timeout, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or its last (falsy) one after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        # green under monkey-patching; without it, a plain sleep of the calling thread
        eventlet.sleep(interval)
