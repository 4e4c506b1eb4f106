"""Pacing: reconnect delays and a token bucket with an injected clock. Pure: no sleeping, no I/O."""
from __future__ import annotations

import random
from typing import Callable, Iterator

__all__ = ["backoff", "TokenBucket"]


def backoff(
    initial: float,
    maximum: float = 60.0,
    factor: float = 2.0,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Reconnect delays: ``initial`` first, then exponential growth with full jitter, capped at ``maximum``.

    The first delay is exactly ``initial`` (the documented RECONNECT_DELAY); later ones are drawn uniformly
    from ``[initial, ceiling]`` where the ceiling doubles each time, so reconnecting clients spread out.
    """
    yield initial
    ceiling = initial
    while True:
        ceiling = min(maximum, ceiling * factor)
        yield initial + (ceiling - initial) * rng()


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` stored; ``clock`` returns monotonic seconds."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self._rate = rate
        self._capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def try_take(self, tokens: float = 1.0) -> bool:
        """Take tokens if available now; return whether they were taken."""
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` will be available (0 if they are now)."""
        self._refill()
        return max(0.0, (tokens - self._tokens) / self._rate)
