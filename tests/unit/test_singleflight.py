"""streaming.core.singleflight: one execution per key for concurrent callers."""
from __future__ import annotations

import threading

import pytest

from streaming.core.singleflight import SingleFlight
from tests.helpers import wait_for


def test_concurrent_callers_share_one_execution() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = threading.Event()
    calls = []

    def work() -> int:
        calls.append(1)
        release.wait(5)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(flight.do("k", work))) for _ in range(10)]
    for thread in threads:
        thread.start()
    wait_for(lambda: flight.waiters("k") == 9)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == [1] and results == [42] * 10
    assert flight.do("k", lambda: 7) == 7, "a finished flight is not reused"


def test_the_error_reaches_every_caller() -> None:
    flight: SingleFlight[int] = SingleFlight()

    def fail() -> int:
        raise LookupError("nope")

    with pytest.raises(LookupError):
        flight.do("k", fail)
    assert flight.do("k", lambda: 1) == 1
