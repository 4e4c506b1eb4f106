"""streaming.pacing: backoff delays and the token bucket, on an injected clock."""
from __future__ import annotations

from itertools import islice

from streaming.pacing import TokenBucket, backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_starts_at_the_reconnect_delay_and_stays_capped() -> None:
    delays = list(islice(backoff(5.0, 60.0, rng=lambda: 1.0), 8))
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0, 60.0]


def test_backoff_jitter_never_goes_below_the_initial_delay() -> None:
    delays = list(islice(backoff(5.0, 60.0, rng=lambda: 0.0), 5))
    assert delays == [5.0] * 5


def test_bucket_limits_rate_and_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, 1, clock)
    assert bucket.try_take()
    assert not bucket.try_take()
    assert abs(bucket.wait_time() - 0.25) < 1e-9
    clock.now += 0.25
    assert bucket.try_take()
    clock.now += 100
    assert bucket.try_take() and not bucket.try_take()  # capacity caps the burst


def test_bucket_over_one_simulated_second_stays_under_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, 1, clock)
    taken = 0
    for _ in range(1000):
        if bucket.try_take():
            taken += 1
        clock.now += 0.001
    assert taken <= 5
