"""StreamStates: whether each symbol's stream is live, reconnecting or stale, and since when. No I/O.

Only transitions matter to clients: leaving ``live`` (the stream went down or quiet) and returning to it. A
symbol seen for the first time becomes live silently.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["StreamStates", "StreamState", "LIVE", "RECONNECTING", "STALE"]

LIVE = "live"
RECONNECTING = "reconnecting"
STALE = "stale"


@dataclass(frozen=True, slots=True)
class StreamState:
    symbol: str
    state: str
    since: float  # wall-clock seconds


class StreamStates:
    def __init__(self) -> None:
        self._states: dict[str, StreamState] = {}
        self._last_tick: dict[str, float] = {}  # monotonic receive time of the symbol's last tick
        self.not_live: set[str] = set()  # read on the hot path: one set lookup per tick

    def get(self, symbol: str) -> StreamState | None:
        return self._states.get(symbol)

    def down(self, symbols: Iterable[str], state: str, now: float) -> list[StreamState]:
        """Mark symbols reconnecting or stale; returns the ones whose state changed."""
        changed = []
        for symbol in symbols:
            current = self._states.get(symbol)
            if current is not None and current.state == state:
                continue
            new = StreamState(symbol, state, now)
            self._states[symbol] = new
            self.not_live.add(symbol)
            changed.append(new)
        return changed

    def tick(self, symbol: str, now: float, received: float) -> StreamState | None:
        """A tick arrived; returns the new state if the symbol came back to live (not on its first tick)."""
        self._last_tick[symbol] = received
        if symbol not in self.not_live:
            if symbol not in self._states:
                self._states[symbol] = StreamState(symbol, LIVE, now)
            return None
        self.not_live.discard(symbol)
        new = StreamState(symbol, LIVE, now)
        self._states[symbol] = new
        return new

    def quiet(self, symbols: Iterable[str], received_before: float) -> list[str]:
        """Live symbols among these whose last tick was received before ``received_before``."""
        return [
            symbol
            for symbol in symbols
            if symbol not in self.not_live and self._last_tick.get(symbol, received_before) < received_before
        ]

    def tracked(self) -> set[str]:
        """Every symbol with a state or a tick on record."""
        return set(self._states) | set(self._last_tick)

    def forget(self, symbol: str) -> None:
        """The symbol is no longer streamed."""
        self._states.pop(symbol, None)
        self._last_tick.pop(symbol, None)
        self.not_live.discard(symbol)

    def down_symbols(self) -> dict[str, str]:
        """Symbols not live now, with their state."""
        return {symbol: self._states[symbol].state for symbol in sorted(self.not_live) if symbol in self._states}
