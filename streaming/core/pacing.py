"""Pacing: reconnect delays, a token bucket, a sliding-window budget and the REST request gate.

Pure: clocks and random numbers are injected; nothing here sleeps or does I/O.
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from itertools import count

__all__ = [
    "backoff", "ReconnectPolicy", "TokenBucket", "SlidingWindowBudget", "RequestGate",
    "STEADY_DELAYS", "RETRY_JITTER", "HEALTHY_AFTER",
]

# Reconnect delays (README "Healing"). The first STEADY_DELAYS delays after the exchange last served data (the
# drop and five failed attempts: about 30 s of outage with the default RECONNECT_DELAY) stay within RETRY_JITTER
# of RECONNECT_DELAY, so an exchange that accepts again is back within about RECONNECT_DELAY; only a longer
# outage backs off, up to RECONNECT_MAX_DELAY. One attempt per RECONNECT_DELAY per connection is far below
# Binance's 300 connection attempts per 5 minutes per IP, and the pool's budget bounds all connections together.
# With Binance's 2 s ticker, 10 % of jitter keeps "reachable again to first fresh price" within RECONNECT_DELAY
# + 3 s (5.5 s + the handshake + up to 2 s for the next ticker).
STEADY_DELAYS = 6
RETRY_JITTER = 0.1
# A connection that stayed up this long (5 ticker intervals) shows the exchange serving, even if quiet.
HEALTHY_AFTER = 10.0


def backoff(
    initial: float,
    maximum: float = 10.0,
    factor: float = 2.0,
    rng: Callable[[], float] = random.random,
    steady: int = STEADY_DELAYS,
    jitter: float = RETRY_JITTER,
) -> Iterator[float]:
    """Delays before successive connection attempts, each drawn uniformly from ``[initial, ceiling]`` (full
    jitter above the floor ``initial``, the documented RECONNECT_DELAY), so reconnecting clients spread out.

    The ceiling is ``initial * (1 + jitter)`` for the first ``steady`` delays, then it grows by ``factor`` per
    attempt up to ``maximum``; it never goes below ``initial``.
    """
    top = max(initial, maximum)
    ceiling = min(top, initial * (1 + jitter))
    for attempt in count():
        if attempt >= steady:
            ceiling = min(top, ceiling * factor)
        yield initial + (ceiling - initial) * rng()


class ReconnectPolicy:
    """How long a connection waits before its next attempt, from how the last one ended.

    The backoff grows only while attempts fail. An attempt whose connection delivered data, or stayed up
    ``healthy_after`` seconds, shows that the exchange serves again: the delays start afresh however soon that
    connection dropped. So a flapping exchange is retried about every ``initial`` seconds (the pool's connection
    budget bounds the rate), and once a refusing exchange accepts again the next attempt comes within
    ``initial * (1 + RETRY_JITTER)``, or within ``maximum`` after an outage longer than the steady delays.
    """

    def __init__(self, initial: float, maximum: float, *, healthy_after: float = HEALTHY_AFTER,
                 rng: Callable[[], float] = random.random) -> None:
        self._initial = initial
        self._maximum = maximum
        self._healthy_after = healthy_after
        self._rng = rng
        self._delays = self._afresh()

    def _afresh(self) -> Iterator[float]:
        return backoff(self._initial, self._maximum, rng=self._rng)

    def after(self, connected_for: float | None, delivered: bool) -> float:
        """Seconds to wait after an attempt ended: ``connected_for`` is how long it was connected (None: it
        never connected), ``delivered`` whether any data arrived on it."""
        if delivered or (connected_for is not None and connected_for >= self._healthy_after):
            self._delays = self._afresh()
        return next(self._delays)


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

    def __init__(self, wall_clock: Callable[[], float], weight_limit: int = 2400, ceiling: float = 0.8,
                 blocking: Mapping[int, float] | None = None, who: str = "Binance") -> None:
        self._clock = wall_clock
        self._blocking = self.DEFAULT_RETRY_AFTER if blocking is None else blocking  # status -> default pause
        self._who = who
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
        if status in self._blocking:
            wait = _seconds(retry_after)
            if wait is None:
                wait = self._blocking[status]
            self._block(now + wait, f"HTTP {status} from {self._who}")

    def pause(self, seconds: float, reason: str) -> None:
        """Hold calls back for ``seconds`` (an exchange said so in its answer's body)."""
        self._block(self._clock() + seconds, reason)

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
