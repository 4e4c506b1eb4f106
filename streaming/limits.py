"""Per-key rate limits (a token bucket per client or per IP) with abuse detection. Pure: the clock is injected.

Used for Socket.IO events per client and for /price requests per IP. Keys are forgotten when they go quiet,
so the table stays bounded whatever the number of clients.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable

from streaming.pacing import TokenBucket

__all__ = ["KeyedLimiter", "Verdict", "ADMIT", "LIMITED", "ABUSE"]

ADMIT = "admit"
LIMITED = "limited"
ABUSE = "abuse"  # limited again and again: the caller should cut the client off
IDLE_AFTER = 60.0  # seconds without a request after which a key's state is dropped (its bucket would be full)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str
    retry_after: float = 0.0


@dataclass
class _Entry:
    bucket: TokenBucket
    last_seen: float
    strikes: int = field(default=0)


class KeyedLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``; ``abuse_after`` refusals in a row is abuse."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float], abuse_after: int = 0, max_keys: int = 100_000
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._abuse_after = abuse_after
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
        if entry.bucket.try_take():
            entry.strikes = 0
            return Verdict(ADMIT)
        entry.strikes += 1
        if self._abuse_after and entry.strikes >= self._abuse_after:
            return Verdict(ABUSE, entry.bucket.wait_time())
        return Verdict(LIMITED, entry.bucket.wait_time())

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.last_seen > IDLE_AFTER]:
            del self._entries[key]
