"""streaming.pacing: backoff delays and the token bucket, on an injected clock."""
from __future__ import annotations

from itertools import islice

from streaming.pacing import RequestGate, SlidingWindowBudget, TokenBucket, backoff


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


def test_sliding_window_budget() -> None:
    clock = FakeClock()
    budget = SlidingWindowBudget(3, 300.0, clock)
    for _ in range(3):
        assert budget.try_acquire()
        clock.now += 1.0
    assert not budget.try_acquire()
    assert budget.wait_time() == 297.0
    clock.now += 296.9
    assert not budget.try_acquire()
    clock.now += 0.2
    assert budget.try_acquire() and not budget.try_acquire()


class WallClock(FakeClock):
    def __init__(self) -> None:
        self.now = 1_699_999_990.0  # 10 s into a minute


def test_gate_honours_retry_after_on_429_and_418() -> None:
    clock = WallClock()
    gate = RequestGate(clock)
    assert gate.blocked_for() == 0.0
    gate.observe(429, "7", "10")
    assert gate.blocked_for() == 7.0 and "429" in gate.reason
    clock.now += 7
    assert gate.blocked_for() == 0.0
    gate.observe(418, None, None)
    assert gate.blocked_for() == 120.0
    gate.observe(429, "5", None)  # a shorter wait never shortens a ban
    assert gate.blocked_for() == 120.0


def test_gate_pauses_until_the_minute_ends_near_the_weight_limit() -> None:
    clock = WallClock()
    gate = RequestGate(clock, weight_limit=2400, ceiling=0.8)
    gate.observe(200, None, "1919")
    assert gate.blocked_for() == 0.0 and gate.used_weight == 1919
    gate.observe(200, None, "1920")
    assert gate.blocked_for() == 50.0 and "weight" in gate.reason


def test_gate_ignores_malformed_headers() -> None:
    gate = RequestGate(WallClock())
    gate.observe(200, "soon", "lots")
    assert gate.blocked_for() == 0.0
    gate.observe(429, "-5", None)
    assert gate.blocked_for() == 60.0
