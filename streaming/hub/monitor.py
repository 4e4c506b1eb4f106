"""StreamMonitor: tells clients when their symbols' ticker streams go down or quiet, and when they are live again.

Subscribers of a symbol's ticker receive ``stream_status`` ``{symbol, exchange, state, since}`` with state
``reconnecting`` (its connection dropped), ``stale`` (no tick for STALE_TIMEOUT although the connection is up) or
``live`` (ticks flow again). Symbols are markets here (``channels.market_of``: ``BTCUSDT``, ``bybit:BTCUSDT``).
It is driven by upstream events, by the fan-out's ticks and by a once-a-second check.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from streaming.core.channels import Channel, Kind, split_market
from streaming.core.models import iso_timestamp
from streaming.hub.status import LIVE, RECONNECTING, STALE, StreamState, StreamStates
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["StreamMonitor", "STREAM_STATUS"]

log = logging.getLogger(__name__)

STREAM_STATUS = "stream_status"
CHECK_INTERVAL = 1.0


class StreamMonitor:
    def __init__(
        self,
        emit: Callable[[str, dict, str], None],
        audience: Callable[[str], int],
        watched: Callable[[], Iterable[str]],  # the symbols whose tickers are streamed now
        stale_timeout: float,
        tasks: TaskRunner,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_stale: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._emit = emit
        self._on_stale = on_stale  # told how many symbols the check found quiet
        self._audience = audience  # subscribers of a symbol's ticker
        self._watched = watched  # symbols streamed now
        self._stale_timeout = stale_timeout
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._states = StreamStates()
        self._task = PeriodicTask("stream monitor", tasks, self.check, CHECK_INTERVAL)

    @staticmethod
    def payload(state: StreamState) -> dict[str, Any]:
        exchange, symbol = split_market(state.symbol)
        return {"symbol": symbol, "exchange": exchange, "state": state.state,
                "since": iso_timestamp(int(state.since * 1000))}

    def _announce(self, states: Iterable[StreamState]) -> None:
        for state in states:
            if self._audience(state.symbol):
                self._emit(STREAM_STATUS, self.payload(state), _ticker_room(state.symbol))

    # -- inputs -----------------------------------------------------------------------------------------------
    def connection_down(self, symbols: Iterable[str], stale: bool = False) -> None:
        with self._lock:
            changed = self._states.down(symbols, STALE if stale else RECONNECTING, self._wall_clock())
        if changed:
            log.info("%d streams %s", len(changed), changed[0].state)
        self._announce(changed)

    def tick(self, symbol: str) -> None:
        """Called by the fan-out for every emitted tick: one set lookup unless the symbol was down."""
        if symbol not in self._states.not_live:
            self._states.tick(symbol, self._wall_clock(), self._monotonic())
            return
        with self._lock:
            back = self._states.tick(symbol, self._wall_clock(), self._monotonic())
        if back is not None:
            self._announce([back])

    # -- views ------------------------------------------------------------------------------------------------
    def status_of(self, symbols: Iterable[str]) -> list[dict[str, Any]]:
        """stream_status payloads for those of these symbols that are not live (for a new subscriber)."""
        with self._lock:
            states = [self._states.get(symbol) for symbol in symbols]
        return [self.payload(s) for s in states if s is not None and s.state != LIVE]

    def down(self) -> dict[str, str]:
        """Symbols whose stream is not live now, with their state."""
        with self._lock:
            return self._states.down_symbols()

    # -- the check task ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._task.stop(timeout)

    def check(self) -> None:  # returns None: the next check after CHECK_INTERVAL
        """Mark symbols that went quiet as stale; forget symbols no longer streamed."""
        watched = set(self._watched())
        with self._lock:
            for symbol in self._states.tracked() - watched:
                self._states.forget(symbol)
            quiet = self._states.quiet(watched, self._monotonic() - self._stale_timeout)
            changed = self._states.down(quiet, STALE, self._wall_clock())
        if changed:
            self._on_stale(len(changed))
            log.warning("%d streams stale: no tick for %.0fs (%s)", len(changed), self._stale_timeout,
                        ", ".join(s.symbol for s in changed[:5]))
        self._announce(changed)


def _ticker_room(market: str) -> str:
    exchange, symbol = split_market(market)
    return Channel(exchange, Kind.TICKER, symbol).room
