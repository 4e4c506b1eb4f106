"""Test helpers shared by every test layer: waiting on a condition with a deadline instead of sleeping, and
counting events in sliding windows.

Timeouts are scaled by the environment variable WS_TEST_TIMEOUT_FACTOR (default 1) for slow machines.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT_FACTOR_VARIABLE = "WS_TEST_TIMEOUT_FACTOR"


def scaled(seconds: float) -> float:
    """`seconds` times the WS_TEST_TIMEOUT_FACTOR environment variable (a positive number, default 1)."""
    raw = os.environ.get(TIMEOUT_FACTOR_VARIABLE, "1")
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_FACTOR_VARIABLE}={raw!r} is not a number; set it to e.g. 2 or unset it") from None
    if not factor > 0:
        raise ValueError(f"{TIMEOUT_FACTOR_VARIABLE}={raw!r} must be positive")
    return seconds * factor


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, message: str = "") -> T:
    """Call `predicate` until it returns something truthy and return that value.

    Raises AssertionError (with `message` and the last falsy value) once `scaled(timeout)` seconds have passed.
    Exceptions raised by the predicate propagate at once.
    """
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"timed out after {scaled(timeout):.2f} s waiting for {detail}; last value: {value!r}")
        time.sleep(interval)


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of `times` (ascending seconds) that fall in one half-open interval [t, t + window)."""
    return max((bisect_left(times, at + window) - i for i, at in enumerate(times)), default=0)
