"""Lookups: the latest ticker, the best bid/ask and the last trades of a symbol on one exchange, for REST clients
and new subscribers: from memory (or Redis) when fresh, else from the exchange's REST API.

Concurrent callers for one thing share one exchange call (single-flight), and a fetched ticker or book ticker
goes through the fan-out before any caller returns: it is cached, and sent on to subscribers if it is newer
than what they have. Fetched trades are only returned: they are history, and subscribers already have them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol, TypeVar

from cache.writer import TickerCache
from streaming.core.channels import Channel, Kind, market_of
from streaming.core.errors import StreamingError, UnknownSymbolError
from streaming.core.models import BookTicker, Model, Ticker, Trade
from streaming.core.singleflight import SingleFlight
from streaming.exchanges.adapter import MarketRest
from streaming.exchanges.messages import StreamBatch
from streaming.exchanges.registry import EXCHANGES
from streaming.hub.stores import TradeTape
from streaming.runtime.tasks import TaskRunner

__all__ = ["Lookups", "CACHE", "API", "WARM_UP_LIMIT"]

log = logging.getLogger(__name__)

CACHE = "cache"
API = "api"
# A new subscriber's first price comes from REST for at most this many symbols per request (request weight 1 each).
WARM_UP_LIMIT = 20
# Symbols an exchange called invalid are not asked about again for this long (only matters before its symbol
# list has loaded: afterwards unknown symbols never reach it).
UNKNOWN_SYMBOL_TTL = 300.0
MAX_REMEMBERED_UNKNOWN = 10_000
REST_SOURCES = {Kind.TICKER: "rest:ticker/24hr", Kind.BOOK: "rest:ticker/bookTicker"}

T = TypeVar("T")


class Books(Protocol):
    """Where the latest best bid/ask of a symbol is held: memory (streaming/hub/stores.py), or on a gateway the
    book history in Redis that the leader writes (streaming/cluster/shared.py)."""

    def peek(self, market: str, max_age: float) -> BookTicker | None: ...


class Lookups:
    def __init__(
        self,
        rests: Mapping[str, MarketRest],  # by exchange
        cache: TickerCache,
        books: Books,
        trades: TradeTape,
        publish: Callable[[StreamBatch], object],
        tasks: TaskRunner,
        max_age: float,
        is_streamed: Callable[[Channel], bool],
    ) -> None:
        self._rests = rests
        self._cache = cache
        self._books = books
        self._trades = trades
        self._publish = publish  # a fetched update, through the fan-out (a gateway: nowhere, it is not the leader)
        self._tasks = tasks
        self._max_age = max_age
        self._is_streamed = is_streamed  # the exchange delivers this channel's stream now
        self._flights: SingleFlight[Any] = SingleFlight()
        self._unknown: dict[str, float] = {}  # market -> until when the exchange's "invalid symbol" is remembered
        self._lock = threading.Lock()
        self._warming: set[str] = set()  # markets
        self._stopping = threading.Event()

    # -- the three look-ups -----------------------------------------------------------------------------------
    def fresh_ticker(self, exchange: str, symbol: str) -> tuple[Ticker, str]:
        """A fresh tick of a validated symbol and where it came from (CACHE or API).

        Raises UnknownSymbolError, or UpstreamUnavailableError (RateLimitedError while the exchange says back
        off)."""
        market = market_of(exchange, symbol)
        return self._look_up((Kind.TICKER, market), market,
                             lambda: self._cache.latest(market, max_age=self._max_age),
                             lambda: self._published(self._rests[exchange].ticker(symbol)))

    def fresh_book(self, exchange: str, symbol: str) -> tuple[BookTicker, str]:
        """A fresh best bid/ask of a validated symbol and where it came from; raises as ``fresh_ticker``."""
        market = market_of(exchange, symbol)
        return self._look_up((Kind.BOOK, market), market, lambda: self._books.peek(market, self._max_age),
                             lambda: self._published(self._rests[exchange].book_ticker(symbol)))

    def recent_trades(self, exchange: str, symbol: str, limit: int) -> tuple[list[Trade], str]:
        """The last ``limit`` trades of a validated symbol, oldest first, and where they came from: the trades
        kept in memory when its trade stream is live and they hold that many without a gap, else the
        exchange's REST API."""
        channel = Channel(exchange, Kind.TRADE, symbol)
        consecutive = EXCHANGES[exchange].trade_ids_consecutive

        def kept() -> list[Trade] | None:
            return self._trades.recent(channel.market, limit, consecutive) if self._is_streamed(channel) else None

        return self._look_up((Kind.TRADE, channel.market, limit), channel.market, kept,
                             lambda: self._rests[exchange].recent_trades(symbol, limit))

    def _look_up(self, key: Hashable, market: str, held: Callable[[], T | None],
                 fetch: Callable[[], T]) -> tuple[T, str]:
        found = held()
        if found is not None:
            return found, CACHE
        return self._flights.do(key, lambda: self._fetch(market, held, fetch))

    def _fetch(self, market: str, held: Callable[[], T | None], fetch: Callable[[], T]) -> tuple[T, str]:
        found = held()
        if found is not None:  # it arrived while this caller waited for the flight
            return found, CACHE
        if self._unknown.get(market, 0.0) > time.monotonic():
            raise UnknownSymbolError(f"unknown symbol {market!r}: the exchange answered that it has no such symbol")
        try:
            return fetch(), API
        except UnknownSymbolError:
            if len(self._unknown) >= MAX_REMEMBERED_UNKNOWN:
                self._unknown.clear()
            self._unknown[market] = time.monotonic() + UNKNOWN_SYMBOL_TTL  # no second call for it meanwhile
            raise

    def _published(self, update: Model) -> Any:
        """Cache a fetched update and send it on (if newer than what subscribers have); returns it."""
        self._publish(StreamBatch(REST_SOURCES[update.kind], (update,)))
        return update

    # -- first prices for new subscribers ---------------------------------------------------------------------
    def warm_up(self, exchange: str, symbols: list[str]) -> None:
        """Fetch, in the background, the tickers of up to WARM_UP_LIMIT of these symbols of one exchange not
        being fetched yet."""
        with self._lock:
            cold = [symbol for symbol in symbols if market_of(exchange, symbol) not in self._warming][:WARM_UP_LIMIT]
            self._warming.update(market_of(exchange, symbol) for symbol in cold)
        if cold:
            self._tasks.start(self._warm_up, exchange, cold)

    def _warm_up(self, exchange: str, symbols: list[str]) -> None:
        try:
            for symbol in symbols:
                if self._stopping.is_set():
                    break
                try:
                    self.fresh_ticker(exchange, symbol)
                except StreamingError as exc:  # counted in rest_requests_total; the stream will follow
                    log.debug("first price of %s on %s from REST failed: %s", symbol, exchange, exc)
        finally:
            with self._lock:
                self._warming.difference_update(market_of(exchange, symbol) for symbol in symbols)

    def stop(self) -> None:
        self._stopping.set()

    def start(self) -> None:
        self._stopping.clear()
