"""Test helpers shared by every test layer: waiting on a condition with a deadline instead of sleeping, and
counting events in sliding windows.

Timeouts and latency budgets are scaled by the environment variable WS_TEST_TIMEOUT_FACTOR for slow machines.
When it is not set, the suite sets it from ``machine_factor``: how much slower than the reference this machine
runs a fixed piece of Python (never below 1).
"""

from __future__ import annotations

import json
import os
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT_FACTOR_VARIABLE = "WS_TEST_TIMEOUT_FACTOR"


# What the calibration loop takes on the reference: a 2-core machine on which every budget of the suite holds with
# room to spare. The budgets were set on such machines; one that runs Python slower gets them scaled, up to
# MAX_MACHINE_FACTOR (slower than that, set WS_TEST_TIMEOUT_FACTOR yourself).
REFERENCE_SECONDS = 0.025
MAX_MACHINE_FACTOR = 3.0
_SAMPLE = {"e": "24hrTicker", "E": 1764770000000, "s": "BTCUSDT", "c": "91000.10", "Q": "0.005", "h": "92000.00",
           "l": "90000.00", "v": "123456.789", "q": "11234567890.12", "O": 1764683600000, "C": 1764770000000}


def machine_factor(rounds: int = 7) -> float:
    """This machine's slowness against the reference: the best of ``rounds`` runs of a loop of what the service
    does most (JSON and small integer work), over REFERENCE_SECONDS; between 1 and MAX_MACHINE_FACTOR."""

    def once() -> float:
        began = time.perf_counter()
        for _ in range(2000):
            json.loads(json.dumps(_SAMPLE))
            sum(range(200))
        return time.perf_counter() - began

    best = min(once() for _ in range(rounds))
    return min(MAX_MACHINE_FACTOR, max(1.0, best / REFERENCE_SECONDS))


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
