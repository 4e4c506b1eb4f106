"""Pacing: reconnect delays, a token bucket, a sliding-window budget and the REST request gate.

Pure: clocks are injected; nothing here sleeps or does I/O.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Callable, Iterator

__all__ = ["backoff", "TokenBucket", "SlidingWindowBudget", "RequestGate"]


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


class SlidingWindowBudget:
    """At most ``limit`` events in any ``window`` seconds (e.g. new connections per 5 minutes)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a budget needs limit >= 1 and window > 0")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._events: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._events and self._events[0] <= now - self._window:
            self._events.popleft()

    def try_acquire(self) -> bool:
        now = self._clock()
        self._expire(now)
        if len(self._events) >= self._limit:
            return False
        self._events.append(now)
        return True

    def wait_time(self) -> float:
        """Seconds until ``try_acquire`` can succeed."""
        now = self._clock()
        self._expire(now)
        if len(self._events) < self._limit:
            return 0.0
        return self._events[0] + self._window - now


class RequestGate:
    """When Binance's REST API may be called again ("General Info: LIMITS").

    HTTP 429 means back off now, 418 means the IP is banned: both carry ``Retry-After`` (seconds) when the
    server says how long. The used weight of the current minute (``X-MBX-USED-WEIGHT-1M``) above ``ceiling``
    pauses calls until the minute ends, so the service never reaches 429 by its own traffic.
    """

    DEFAULT_RETRY_AFTER = {429: 60.0, 418: 120.0}

    def __init__(self, wall_clock: Callable[[], float], weight_limit: int = 2400, ceiling: float = 0.8) -> None:
        self._clock = wall_clock
        self._ceiling = int(weight_limit * ceiling)
        self._blocked_until = 0.0
        self.reason = ""
        self.used_weight: int | None = None

    def blocked_for(self) -> float:
        """Seconds until calls are allowed again (0.0 when they are)."""
        return max(0.0, self._blocked_until - self._clock())

    def observe(self, status: int, retry_after: str | None, used_weight: str | None) -> None:
        """Learn from one answer's status and headers."""
        now = self._clock()
        if used_weight is not None and used_weight.strip().isdigit():
            self.used_weight = int(used_weight)
            if self.used_weight >= self._ceiling:
                self._block(now + 60.0 - now % 60.0, f"used weight {self.used_weight} of this minute")
        if status in self.DEFAULT_RETRY_AFTER:
            wait = _seconds(retry_after)
            if wait is None:
                wait = self.DEFAULT_RETRY_AFTER[status]
            self._block(now + wait, f"HTTP {status} from Binance")

    def _block(self, until: float, reason: str) -> None:
        if until > self._blocked_until:
            self._blocked_until = until
            self.reason = reason


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        value = float(header.strip())
    except ValueError:
        return None
    return value if 0 <= value < 7 * 86400 else None
