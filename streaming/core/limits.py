"""Per-key rate limits (a token bucket per client or per IP) with abuse detection. Pure: the clock is injected.

Used for Socket.IO events per client and for /price requests per IP. Keys are forgotten when they go quiet,
so the table stays bounded whatever the number of clients.

A key is *over the limit* from its first refused request until more time than the gap (``OVER_LIMIT_GAP``
seconds, or the time one token takes to refill if that is longer) passes without a refusal; admitted requests
in between do not end it (a client flooding at ten times the rate has one request in ten admitted). A refusal
more than ``abuse_after`` seconds after the start of the current spell over the limit is abuse. So a burst,
however large, followed by compliant behaviour never is (the spell ends one gap after its last refusal), and a
key that keeps flooding is abuse at its first refusal past ``abuse_after`` seconds.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from streaming.core.pacing import TokenBucket

__all__ = ["KeyedLimiter", "Verdict", "ADMIT", "LIMITED", "ABUSE", "OVER_LIMIT_GAP", "NOTICE_INTERVAL"]

ADMIT = "admit"
LIMITED = "limited"
ABUSE = "abuse"  # over the limit for longer than abuse_after seconds: the caller should cut the client off
IDLE_AFTER = 60.0  # seconds without a request after which a key's state is dropped (its bucket would be full)
OVER_LIMIT_GAP = 1.0  # seconds without a refusal that end a spell over the limit (at least one token's refill time)
NOTICE_INTERVAL = 1.0  # while a key is refused, at most one refusal per this many seconds asks for a notice
MIN_RETRY_AFTER = 0.001  # seconds: the least retry_after a refusal says


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str
    retry_after: float = 0.0
    # For a refusal: whether the caller should tell the client (the first refusal of a spell, then at most one
    # per NOTICE_INTERVAL); the others are refused without a notice of their own.
    notify: bool = False


@dataclass(slots=True)
class _Entry:
    bucket: TokenBucket
    last_seen: float
    over_since: float | None = None  # the first refusal of the current spell over the limit
    last_refusal: float = -math.inf
    last_notice: float = -math.inf


class KeyedLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``; over the limit for more than
    ``abuse_after`` seconds is abuse (0: never)."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float], abuse_after: float = 0.0,
        max_keys: int = 100_000,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._abuse_after = abuse_after
        self._gap = max(OVER_LIMIT_GAP, 1.0 / rate)
        self._max_keys = max_keys
        self._entries: dict[Hashable, _Entry] = {}

    def admit(self, key: Hashable) -> Verdict:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                self._sweep(now)
            entry = self._entries[key] = _Entry(TokenBucket(self._rate, self._burst, self._clock), now)
        entry.last_seen = now
        if now - entry.last_refusal > self._gap:
            entry.over_since = None  # the last spell over the limit (if any) has ended
        if entry.bucket.try_take():
            return Verdict(ADMIT)
        starts = entry.over_since is None
        over_since = entry.over_since = now if entry.over_since is None else entry.over_since
        entry.last_refusal = now
        # never 0: the bucket may refill between the refusal and this reading, and "retry after 0 s" invites a
        # client to hammer
        retry_after = max(MIN_RETRY_AFTER, entry.bucket.wait_time())
        if self._abuse_after and now - over_since > self._abuse_after:
            return Verdict(ABUSE, retry_after, notify=True)
        notify = starts or now - entry.last_notice >= NOTICE_INTERVAL
        if notify:
            entry.last_notice = now
        return Verdict(LIMITED, retry_after, notify)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.last_seen > IDLE_AFTER]:
            del self._entries[key]
