"""streaming.core.pacing: reconnect delays, the token bucket, the budget and the REST gate, on injected clocks."""
from __future__ import annotations

import random
from collections.abc import Callable
from itertools import islice

from streaming.core.pacing import (
    HEALTHY_AFTER,
    RETRY_JITTER,
    STEADY_DELAYS,
    ReconnectPolicy,
    RequestGate,
    SlidingWindowBudget,
    TokenBucket,
    backoff,
)

STEADY = 5.0 * (1 + RETRY_JITTER)  # the longest of the steady delays after RECONNECT_DELAY=5


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_stays_near_the_reconnect_delay_for_a_handful_of_attempts_then_grows_to_the_cap() -> None:
    assert list(islice(backoff(5.0, 10.0, rng=lambda: 1.0), 9)) == [STEADY] * STEADY_DELAYS + [10.0] * 3
    assert list(islice(backoff(5.0, 60.0, rng=lambda: 1.0), 11)) == [STEADY] * 6 + [11.0, 22.0, 44.0, 60.0, 60.0]


def test_backoff_jitter_never_goes_below_the_initial_delay() -> None:
    assert list(islice(backoff(5.0, 60.0, rng=lambda: 0.0), 10)) == [5.0] * 10
    assert list(islice(backoff(5.0, 1.0, rng=lambda: 1.0), 8)) == [5.0] * 8, "a cap below the delay: the delay"
    assert list(islice(backoff(5.0, 5.5, rng=lambda: 1.0), 2)) == [5.5, 5.5], "the cap caps the jitter too"


def test_backoff_is_full_jitter_over_its_range() -> None:
    draws = iter([0.0, 0.5, 1.0] * 4)
    delays = list(islice(backoff(5.0, 10.0, rng=lambda: next(draws)), 9))
    assert delays[:3] == [5.0, 5.25, 5.5] and delays[6:] == [5.0, 7.5, 10.0]


def failing_attempts(policy: ReconnectPolicy, count: int) -> list[float]:
    return [policy.after(None, delivered=False) for _ in range(count)]


def test_connections_that_delivered_start_the_delays_afresh_however_soon_they_dropped() -> None:
    policy = ReconnectPolicy(5.0, 10.0, rng=lambda: 1.0)
    for _ in range(20):  # flapping: connected, prices flowed, dropped after 0.5 s
        assert policy.after(0.5, delivered=True) == STEADY
    assert failing_attempts(policy, 8) == [STEADY] * 5 + [10.0] * 3
    assert policy.after(0.5, delivered=True) == STEADY


def test_only_attempts_that_failed_grow_the_delay() -> None:
    policy = ReconnectPolicy(5.0, 10.0, rng=lambda: 1.0)
    assert failing_attempts(policy, 3) == [STEADY] * 3
    assert [policy.after(1.0, delivered=False) for _ in range(3)] == [STEADY] * 3, "accepted, then closed at once"
    assert policy.after(None, delivered=False) == 10.0, "a connection that never served counts as failing"
    assert policy.after(HEALTHY_AFTER, delivered=False) == STEADY, "up long enough: serving, if quietly"


def first_attempt_after(outage: float, draws: Callable[[], float], initial: float = 5.0,
                        maximum: float = 10.0) -> float:
    """Seconds from the end of an outage (every attempt refused; it began with a drop after three quick drops
    of connections that delivered) to the first attempt after it."""
    policy = ReconnectPolicy(initial, maximum, rng=draws)
    for _ in range(3):
        policy.after(0.5, delivered=True)
    now = policy.after(0.5, delivered=True)
    while now < outage:
        now += policy.after(None, delivered=False)
    return now - outage


def test_after_flapping_an_exchange_that_accepts_again_is_retried_within_about_the_reconnect_delay() -> None:
    rng = random.Random(7)
    outages = [step / 4 for step in range(0, 4 * 120)]  # ends from 0 to 120 s after the drop
    for draws in (lambda: 1.0, lambda: 0.0, rng.random):
        waits = {outage: first_attempt_after(outage, draws) for outage in outages}
        assert all(wait <= 5.0 * (1 + RETRY_JITTER) for outage, wait in waits.items() if outage <= 30), \
            "within RECONNECT_DELAY and its jitter after an outage of a handful of attempts"
        assert max(waits.values()) <= 10.0, "never above RECONNECT_MAX_DELAY"


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
