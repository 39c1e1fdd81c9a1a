"""Waiting on another thread or process that gives no event to wait on: poll a predicate
until it holds, with a deadline, and fail the test by name when it never does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, what: str = "condition",
             every: float = 0.02) -> T:
    """``predicate()``'s first truthy value within ``timeout`` seconds; AssertionError after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} ({timeout:g} s)")
