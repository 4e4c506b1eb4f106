"""streaming.limits: per-key token buckets with abuse detection."""
from __future__ import annotations

from streaming.limits import ABUSE, ADMIT, LIMITED, KeyedLimiter
from tests.unit.test_pacing import FakeClock


def test_each_key_has_its_own_bucket() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.admit("a").outcome for _ in range(4)] == [ADMIT, ADMIT, ADMIT, LIMITED]
    assert limiter.admit("b").outcome == ADMIT
    verdict = limiter.admit("a")
    assert verdict.outcome == LIMITED and abs(verdict.retry_after - 0.5) < 1e-9
    clock.now += 0.5
    assert limiter.admit("a").outcome == ADMIT


def test_refusals_in_a_row_are_abuse_and_an_admitted_request_resets_them() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=1, clock=clock, abuse_after=3)
    assert limiter.admit("a").outcome == ADMIT
    assert [limiter.admit("a").outcome for _ in range(3)] == [LIMITED, LIMITED, ABUSE]
    clock.now += 1
    assert limiter.admit("a").outcome == ADMIT
    assert limiter.admit("a").outcome == LIMITED


def test_the_table_stays_bounded() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=1, clock=clock, max_keys=100)
    for i in range(100):
        limiter.admit(i)
    clock.now += 61
    limiter.admit("new")
    assert len(limiter) == 1
    limiter.forget("new")
    assert len(limiter) == 0
