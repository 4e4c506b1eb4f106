"""What the server lets in at the TCP level, before any HTTP or Socket.IO: pure bookkeeping, no sockets.

- ``AddressTable``: open TCP connections per client address, with a cap, so one address cannot take every
  file descriptor of the process.
- ``Exhaustion``: episodes of failed ``accept()`` calls for want of descriptors (EMFILE, ENFILE): when to log,
  how long to pause.

Clocks are injected; the servers in ``streaming.runtime.server`` drive these.
"""
from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AddressTable", "Exhaustion", "ExhaustionStep", "EXHAUSTION_ERRORS"]

# accept() errors that mean "no descriptor (or kernel memory) for a new connection now": retrying later works
# (metrics.labels.AcceptError names the same four).
EXHAUSTION_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

class AddressTable:
    """Open connections per address, at most ``limit`` each. Thread-safe."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an address table needs a limit of at least 1")
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (and nothing counted) when it already has ``limit``."""
        with self._lock:
            count = self._open.get(address, 0)
            if count >= self.limit:
                return False
            self._open[address] = count + 1
            return True

    def release(self, address: str) -> None:
        """A connection admitted from ``address`` has closed."""
        with self._lock:
            left = self._open.get(address, 0) - 1
            if left > 0:
                self._open[address] = left
            else:
                self._open.pop(address, None)

    def open_from(self, address: str) -> int:
        with self._lock:
            return self._open.get(address, 0)

    def total(self) -> int:
        with self._lock:
            return sum(self._open.values())


@dataclass(frozen=True, slots=True)
class ExhaustionStep:
    """What to do after a failed accept: pause this long; ``report`` is True for the first failure of an episode."""

    pause: float
    report: bool


class Exhaustion:
    """Episodes of accept() failing for want of descriptors, so that the server logs once per episode rather than
    once per failure. An episode starts with a failure and ends once ``quiet`` seconds have passed without one
    (near the limit, accepts succeed and fail in turns: that is one episode). The server pauses accepting
    ``pause`` seconds after every failure; pending connections wait in the kernel's listen queue meanwhile."""

    def __init__(self, pause: float, clock: Callable[[], float], quiet: float = 10.0) -> None:
        self.pause = pause
        self.quiet = quiet
        self._clock = clock
        self._since: float | None = None  # when the current episode started
        self._last_failure = 0.0
        self._recovery_reported = False
        self.failures = 0  # failed accepts of the current episode

    @property
    def active(self) -> bool:
        return self._since is not None and self._clock() - self._last_failure <= self.quiet

    def failed(self) -> ExhaustionStep:
        now = self._clock()
        first = not self.active
        if first:
            self._since = now
            self._recovery_reported = False
            self.failures = 0
        self._last_failure = now
        self.failures += 1
        return ExhaustionStep(self.pause, first)

    def recovered(self) -> float | None:
        """An accept succeeded: the seconds since the episode started, the first time in an episode; else None."""
        if self._since is None or self._recovery_reported:
            return None
        self._recovery_reported = True
        return self._clock() - self._since
