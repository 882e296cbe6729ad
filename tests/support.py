"""Small helpers for tests that wait on asynchronous effects (events, projections, Kafka)."""

from common.timers import wait_for


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value or fail after ``timeout``."""
    value = wait_for(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")
    return value
