"""Lookups: the latest ticker, the best bid/ask and the last trades of a symbol, for REST clients and new
subscribers: from memory (or Redis) when fresh, else from Binance REST.

Concurrent callers for one thing share one Binance call (single-flight), and a fetched ticker or book ticker
goes through the fan-out before any caller returns: it is cached, and sent on to subscribers if it is newer
than what they have. Fetched trades are only returned: they are history, and subscribers already have them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar

from cache.writer import TickerCache
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import StreamingError, UnknownSymbolError
from streaming.core.models import BookTicker, Model, Ticker, Trade
from streaming.core.singleflight import SingleFlight
from streaming.exchanges.binance.protocol import StreamBatch
from streaming.exchanges.binance.rest import BinanceRest
from streaming.hub.stores import TradeTape
from streaming.runtime.tasks import TaskRunner

__all__ = ["Lookups", "CACHE", "API", "WARM_UP_LIMIT"]

log = logging.getLogger(__name__)

CACHE = "cache"
API = "api"
# A new subscriber's first price comes from REST for at most this many symbols per request (request weight 1 each).
WARM_UP_LIMIT = 20
# Symbols Binance called invalid are not asked about again for this long (only matters before exchangeInfo
# has loaded: afterwards unknown symbols never reach Binance).
UNKNOWN_SYMBOL_TTL = 300.0
MAX_REMEMBERED_UNKNOWN = 10_000
REST_SOURCES = {Kind.TICKER: "rest:ticker/24hr", Kind.BOOK: "rest:ticker/bookTicker"}

T = TypeVar("T")


class Books(Protocol):
    """Where the latest best bid/ask of a symbol is held: memory (streaming/hub/stores.py), or on a gateway the
    book history in Redis that the leader writes (streaming/cluster/shared.py)."""

    def peek(self, symbol: str, max_age: float) -> BookTicker | None: ...


class Lookups:
    def __init__(
        self,
        rest: BinanceRest,
        cache: TickerCache,
        books: Books,
        trades: TradeTape,
        publish: Callable[[StreamBatch], object],
        tasks: TaskRunner,
        max_age: float,
        is_streamed: Callable[[Channel], bool],
    ) -> None:
        self._rest = rest
        self._cache = cache
        self._books = books
        self._trades = trades
        self._publish = publish  # a fetched update, through the fan-out (a gateway: nowhere, it is not the leader)
        self._tasks = tasks
        self._max_age = max_age
        self._is_streamed = is_streamed  # Binance delivers this channel's stream now
        self._flights: SingleFlight[Any] = SingleFlight()
        self._unknown: dict[str, float] = {}  # symbol -> until when Binance's "Invalid symbol." is remembered
        self._lock = threading.Lock()
        self._warming: set[str] = set()
        self._stopping = threading.Event()

    # -- the three look-ups -----------------------------------------------------------------------------------
    def fresh_ticker(self, symbol: str) -> tuple[Ticker, str]:
        """A fresh tick of a validated symbol and where it came from (CACHE or API).

        Raises UnknownSymbolError, or UpstreamUnavailableError (RateLimitedError while Binance says back off)."""
        return self._look_up((Kind.TICKER, symbol), symbol,
                             lambda: self._cache.latest(symbol, max_age=self._max_age),
                             lambda: self._published(self._rest.ticker_24hr(symbol)))

    def fresh_book(self, symbol: str) -> tuple[BookTicker, str]:
        """A fresh best bid/ask of a validated symbol and where it came from; raises as ``fresh_ticker``."""
        return self._look_up((Kind.BOOK, symbol), symbol, lambda: self._books.peek(symbol, self._max_age),
                             lambda: self._published(self._rest.book_ticker(symbol)))

    def recent_trades(self, symbol: str, limit: int) -> tuple[list[Trade], str]:
        """The last ``limit`` trades of a validated symbol, oldest first, and where they came from: the trades
        kept in memory when its trade stream is live and they hold that many without a gap, else Binance."""
        channel = Channel(BINANCE, Kind.TRADE, symbol)

        def kept() -> list[Trade] | None:
            return self._trades.recent(symbol, limit) if self._is_streamed(channel) else None

        return self._look_up((Kind.TRADE, symbol, limit), symbol, kept, lambda: self._rest.agg_trades(symbol, limit))

    def _look_up(self, key: Hashable, symbol: str, held: Callable[[], T | None],
                 fetch: Callable[[], T]) -> tuple[T, str]:
        found = held()
        if found is not None:
            return found, CACHE
        return self._flights.do(key, lambda: self._fetch(symbol, held, fetch))

    def _fetch(self, symbol: str, held: Callable[[], T | None], fetch: Callable[[], T]) -> tuple[T, str]:
        found = held()
        if found is not None:  # it arrived while this caller waited for the flight
            return found, CACHE
        if self._unknown.get(symbol, 0.0) > time.monotonic():
            raise UnknownSymbolError(f"unknown symbol {symbol!r}: Binance answered 'Invalid symbol.'")
        try:
            return fetch(), API
        except UnknownSymbolError:
            if len(self._unknown) >= MAX_REMEMBERED_UNKNOWN:
                self._unknown.clear()
            self._unknown[symbol] = time.monotonic() + UNKNOWN_SYMBOL_TTL  # no second call for it meanwhile
            raise

    def _published(self, update: Model) -> Any:
        """Cache a fetched update and send it on (if newer than what subscribers have); returns it."""
        self._publish(StreamBatch(REST_SOURCES[update.kind], (update,)))
        return update

    # -- first prices for new subscribers ---------------------------------------------------------------------
    def warm_up(self, symbols: list[str]) -> None:
        """Fetch, in the background, the tickers of up to WARM_UP_LIMIT of these symbols not being fetched yet."""
        with self._lock:
            cold = [symbol for symbol in symbols if symbol not in self._warming][:WARM_UP_LIMIT]
            self._warming.update(cold)
        if cold:
            self._tasks.start(self._warm_up, cold)

    def _warm_up(self, symbols: list[str]) -> None:
        try:
            for symbol in symbols:
                if self._stopping.is_set():
                    break
                try:
                    self.fresh_ticker(symbol)
                except StreamingError as exc:  # counted in rest_requests_total; the stream will follow
                    log.debug("first price of %s from REST failed: %s", symbol, exc)
        finally:
            with self._lock:
                self._warming.difference_update(symbols)

    def stop(self) -> None:
        self._stopping.set()

    def start(self) -> None:
        self._stopping.clear()
