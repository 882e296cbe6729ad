"""common.timers: a timer whose interval is read from config at container setup, and a deadline poll."""

import time

import pytest
from nameko.testing.utils import get_extension

from common.timers import ConfigTimer, config_timer, wait_for


class Ticker:
    name = "ticker"
    ticks = []

    @config_timer("TICK_SECONDS", default=30)
    def tick(self):
        self.ticks.append(time.monotonic())


def test_the_interval_is_read_from_config_when_the_container_starts(container_factory):
    Ticker.ticks.clear()
    container = container_factory(Ticker, {"TICK_SECONDS": "0.05"})  # set after the class was decorated

    container.start()

    assert wait_for(lambda: len(Ticker.ticks) >= 3, timeout=5)
    assert get_extension(container, ConfigTimer).interval == 0.05


@pytest.mark.parametrize("settings", [{}, {"TICK_SECONDS": ""}, {"TICK_SECONDS": None}],
                         ids=["missing", "empty", "null"])
def test_a_missing_or_empty_key_keeps_the_default(container_factory, settings):
    container = container_factory(Ticker, {"OTHER": 1, **settings})

    container.start()

    assert get_extension(container, ConfigTimer).interval == 30


def test_wait_for_returns_the_first_truthy_value():
    answers = iter([None, 0, {"status": "PAID"}, "never asked"])

    assert wait_for(lambda: next(answers), timeout=5, interval=0.01) == {"status": "PAID"}


def test_wait_for_gives_up_after_the_timeout_with_the_last_value():
    calls = []
    started = time.monotonic()

    assert wait_for(lambda: calls.append(1) or [], timeout=0.2, interval=0.02) == []

    assert 0.2 <= time.monotonic() - started < 2
    assert len(calls) >= 2
