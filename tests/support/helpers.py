"""Small helpers shared by the tests."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 20.0, interval: float = 0.02, message: str = ""):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)
