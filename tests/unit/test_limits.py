"""streaming.core.limits: per-key token buckets; abuse is being over the limit for longer than a timeout."""
from __future__ import annotations

from streaming.core.limits import ABUSE, ADMIT, LIMITED, NOTICE_INTERVAL, OVER_LIMIT_GAP, KeyedLimiter
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


def flood(limiter: KeyedLimiter, clock: FakeClock, seconds: float, per_second: float) -> list[tuple[float, str]]:
    """Requests at an even ``per_second`` for ``seconds``: (time since the start, outcome) of each."""
    start, outcomes = clock.now, []
    for i in range(round(seconds * per_second)):
        clock.now = start + i / per_second
        outcomes.append((clock.now - start, limiter.admit("a").outcome))
    return outcomes


def test_a_burst_followed_by_compliant_requests_is_never_abuse() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=10.0, burst=30, clock=clock, abuse_after=2.0)
    burst = [limiter.admit("a").outcome for _ in range(300)]  # all at once
    assert burst.count(ADMIT) == 30 and burst.count(LIMITED) == 270 and ABUSE not in burst
    clock.now += 0.15  # the client waits as told (retry_after 0.1 s)
    outcomes = flood(limiter, clock, seconds=30, per_second=9.9)  # just under the rate, for long after
    assert {outcome for _, outcome in outcomes} == {ADMIT}
    again = [limiter.admit("a").outcome for _ in range(40)]
    assert LIMITED in again and ABUSE not in again, "a later burst is limited: a new spell, not abuse"


def test_a_new_burst_after_a_gap_starts_a_new_spell() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=10.0, burst=30, clock=clock, abuse_after=2.0)
    for _ in range(5):  # a burst of 300 every 1.5 s: each burst is its own spell over the limit
        outcomes = [limiter.admit("a").outcome for _ in range(300)]
        assert ABUSE not in outcomes and LIMITED in outcomes
        clock.now += OVER_LIMIT_GAP + 0.5


def test_flooding_is_abuse_just_after_the_timeout_however_many_requests_are_admitted() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=10.0, burst=30, clock=clock, abuse_after=2.0)
    outcomes = flood(limiter, clock, seconds=4, per_second=100)  # one request in ten is admitted
    first_refusal = next(t for t, outcome in outcomes if outcome == LIMITED)
    first_abuse = next(t for t, outcome in outcomes if outcome == ABUSE)
    assert 2.0 < first_abuse - first_refusal <= 2.0 + 0.01 + 1e-9  # the first refusal past the timeout
    assert ADMIT in {outcome for t, outcome in outcomes if first_refusal < t < first_abuse}


def test_a_gap_shorter_than_one_token_does_not_end_a_spell() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=0.2, burst=1, clock=clock, abuse_after=10.0)  # one token per 5 s
    outcomes = flood(limiter, clock, seconds=20, per_second=0.5)  # a request every 2 s: 2.5 times the rate
    assert ABUSE in {outcome for _, outcome in outcomes}


def test_no_abuse_when_the_timeout_is_zero() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=10.0, burst=30, clock=clock)
    assert ABUSE not in {outcome for _, outcome in flood(limiter, clock, seconds=60, per_second=100)}


def test_refusals_ask_for_a_notice_at_most_once_a_second() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=1.0, burst=1, clock=clock, abuse_after=100.0)
    assert limiter.admit("a").outcome == ADMIT
    start = clock.now
    notices = []
    for i in range(300):  # 300 requests over 3 s, refused but for the ones a token refill lets through
        clock.now = start + i / 100
        verdict = limiter.admit("a")
        assert verdict.outcome != LIMITED or verdict.retry_after > 0
        if verdict.notify:
            notices.append(round(clock.now - start, 2))
    # the first refusal of the spell, then one per NOTICE_INTERVAL (the first refusal at or after it)
    assert notices[0] == 0.0 and len(notices) == 3, notices
    assert all(NOTICE_INTERVAL - 1e-6 <= later - earlier <= NOTICE_INTERVAL + 0.02
               for earlier, later in zip(notices, notices[1:])), notices
    clock.now += OVER_LIMIT_GAP + 1  # quiet: the spell ends; the bucket refills
    assert limiter.admit("a").outcome == ADMIT
    assert limiter.admit("a").notify, "the first refusal of a new spell is always notified"


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


def test_a_refusal_never_says_retry_after_zero_even_if_the_bucket_refilled_meanwhile() -> None:
    """The clock moves on between the refused take and the reading of the wait: by then a token may be back."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.05  # every reading is 50 ms later: the refill completes between refusal and reading
        return now[0]

    limiter = KeyedLimiter(rate=10.0, burst=1, clock=clock)
    verdicts = [limiter.admit("sid") for _ in range(20)]
    refused = [v for v in verdicts if v.outcome != ADMIT]
    assert refused and all(v.retry_after > 0 for v in refused), [v.retry_after for v in refused]
