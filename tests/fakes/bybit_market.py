"""Bybit v5 linear market state of the fake: instruments, a seeded random walk per symbol (order book, trades,
24 h statistics, mark/index/open interest, funding), and the WebSocket messages and REST bodies made from it.

Pure: no sockets, no clock (callers pass times in ms), no asyncio, no locks. Not thread-safe: drive a
`BybitMarket` from one thread (the fake's event loop). Decimals stay `Decimal` inside and become strings on the
wire, as Bybit sends every number of these payloads except `cs`, `ts`, `u`, `seq`, `T`.

Sources (stored copies of Bybit's v5 documentation):
  ticker stream   https://bybit-exchange.github.io/docs/v5/websocket/public/ticker
  trade stream    https://bybit-exchange.github.io/docs/v5/websocket/public/trade
  order book      https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook
  REST tickers    https://bybit-exchange.github.io/docs/v5/market/tickers
  REST trades     https://bybit-exchange.github.io/docs/v5/market/recent-trade
  REST order book https://bybit-exchange.github.io/docs/v5/market/orderbook
  instruments     https://bybit-exchange.github.io/docs/v5/market/instrument
  enums           https://bybit-exchange.github.io/docs/v5/enum
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from tests.fakes.market import format_decimal

# https://bybit-exchange.github.io/docs/v5/enum (contractType, status)
LINEAR_PERPETUAL = "LinearPerpetual"
LINEAR_FUTURES = "LinearFutures"
PRE_LAUNCH, TRADING, DELIVERING, CLOSED = "PreLaunch", "Trading", "Delivering", "Closed"
STATUSES = (PRE_LAUNCH, TRADING, DELIVERING, CLOSED)
# https://bybit-exchange.github.io/docs/v5/enum (tickDirection)
PLUS_TICK, ZERO_PLUS_TICK, MINUS_TICK, ZERO_MINUS_TICK = "PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"
# https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook: "Linear & inverse: Level 1, 50, 200, 1000"
BOOK_DEPTHS = (1, 50, 200, 1000)
REST_BOOK_DEPTH = 1000  # REST `u` "corresponds to `u` in the 1000-level WebSocket orderbook stream" (REST orderbook)
# https://bybit-exchange.github.io/docs/v5/market/recent-trade: linear `limit` [1,1000], default 500
RECENT_TRADES_KEPT = 1000
# https://bybit-exchange.github.io/docs/v5/market/instrument: `limit` [1, 1000], default 500
INSTRUMENTS_PAGE_DEFAULT = 500
# https://bybit-exchange.github.io/docs/v5/websocket/public/trade: "a single message may have up to 1024 trades"
MAX_TRADES_PER_MESSAGE = 1024

HOUR_MS = 3_600_000
FUNDING_INTERVAL_MS = 8 * HOUR_MS  # fundingInterval 480 (minutes) in the documented BTCUSDT instrument
BOOK_LEVELS = 60  # levels kept per side; depths 200 and 1000 show the whole (shallower) book
MIN_BOOK_LEVELS = 40  # a side thinner than this after a sweep is refilled at its far end
TRADE_TO_TS_MS = 3  # a trade's `T` (matching engine) lies this long before the message's `ts`
CTS_TO_TS_MS = 1  # an order book message's `cts` (matching engine) lies this long before its `ts`
# What one tick does to a symbol (the random walk; probabilities per tick).
P_TRADE = 0.55
P_MARK = 0.6
P_BOOK = 0.5
P_FUNDING = 0.05


@dataclass(frozen=True)
class InstrumentSpec:
    """One row of `GET /v5/market/instruments-info?category=linear` as the market needs it."""

    symbol: str
    contract_type: str
    status: str
    base_coin: str
    quote_coin: str
    price_scale: int
    tick_size: Decimal
    qty_step: Decimal
    base_price: Decimal
    symbol_id: int
    launch_time_ms: int
    delivery_time_ms: int = 0  # "Expired futures delivery time / Perpetual delisting time"; 0 when none
    auction_phase: str = ""  # PreLaunch contracts only (enum curAuctionPhase)

    @property
    def qty_decimals(self) -> int:
        return max(0, -int(self.qty_step.as_tuple().exponent))

    @property
    def is_perpetual(self) -> bool:
        return self.contract_type == LINEAR_PERPETUAL

    @property
    def is_usdt_perpetual(self) -> bool:
        """What a client must keep: contractType LinearPerpetual, quoteCoin USDT, status Trading."""
        return self.is_perpetual and self.quote_coin == "USDT" and self.status == TRADING

    @property
    def has_topics(self) -> bool:
        """Its WebSocket topics and REST rows exist (a Closed contract's are gone: "handler not found")."""
        return self.status != CLOSED

    @property
    def feeds_data(self) -> bool:
        """Its market moves and is pushed. Trade docs: "PreLaunch contracts: there is no feed until
        `ContinuousTrading` stage" (orderbook docs say the same)."""
        if self.status == PRE_LAUNCH:
            return self.auction_phase == "ContinuousTrading"
        return self.status in (TRADING, DELIVERING)


def _spec(symbol: str, base: str, quote_coin: str, scale: int, tick: str, step: str, price: str, symbol_id: int,
          **extra: Any) -> InstrumentSpec:
    return InstrumentSpec(symbol=symbol, contract_type=extra.pop("contract_type", LINEAR_PERPETUAL),
                          status=extra.pop("status", TRADING), base_coin=base, quote_coin=quote_coin,
                          price_scale=scale, tick_size=Decimal(tick), qty_step=Decimal(step),
                          base_price=Decimal(price), symbol_id=symbol_id,
                          launch_time_ms=extra.pop("launch_time_ms", 1_585_526_400_000), **extra)


# Trading USDT perpetuals (tick sizes and quantity steps as on Bybit; prices plausible for 2026) ...
CORE_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "BNBUSDT", "LTCUSDT",
                "LINKUSDT", "AVAXUSDT")
DELIVERY_25DEC26_MS = 1_798_185_600_000  # 2026-12-25T08:00:00Z, Bybit's delivery hour
DEFAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _spec("BTCUSDT", "BTC", "USDT", 2, "0.10", "0.001", "86000", 5),
    _spec("ETHUSDT", "ETH", "USDT", 2, "0.01", "0.01", "3200", 6),
    _spec("SOLUSDT", "SOL", "USDT", 3, "0.010", "0.1", "140", 20),
    _spec("XRPUSDT", "XRP", "USDT", 4, "0.0001", "1", "2.1", 7),
    _spec("ADAUSDT", "ADA", "USDT", 4, "0.0001", "1", "0.45", 21),
    _spec("DOGEUSDT", "DOGE", "USDT", 5, "0.00001", "1", "0.16", 24),
    _spec("BNBUSDT", "BNB", "USDT", 2, "0.10", "0.01", "610", 19),
    _spec("LTCUSDT", "LTC", "USDT", 2, "0.01", "0.1", "90", 11),
    _spec("LINKUSDT", "LINK", "USDT", 3, "0.001", "0.1", "14", 22),
    _spec("AVAXUSDT", "AVAX", "USDT", 3, "0.001", "0.1", "25", 23),
    # ... and the traps a client must filter out (contractType, quoteCoin, status: instruments-info + enums).
    _spec("BTCUSDT-25DEC26", "BTC", "USDT", 2, "0.10", "0.001", "87000", 901, contract_type=LINEAR_FUTURES,
          delivery_time_ms=DELIVERY_25DEC26_MS),  # USDT futures: Trading, but not perpetual
    _spec("ETH-25DEC26", "ETH", "USDC", 2, "0.05", "0.01", "3250", 902, contract_type=LINEAR_FUTURES,
          delivery_time_ms=DELIVERY_25DEC26_MS),  # USDC futures
    _spec("BTCPERP", "BTC", "USDC", 1, "0.5", "0.001", "86010", 903),  # USDC perpetual: Trading, quoteCoin USDC
    _spec("NEWCOINUSDT", "NEWCOIN", "USDT", 4, "0.0001", "1", "0.05", 904, status=PRE_LAUNCH,
          auction_phase="CallAuction", launch_time_ms=1_790_000_000_000),  # pre-market, no feed yet
    _spec("OLDCOINUSDT", "OLDCOIN", "USDT", 4, "0.0001", "1", "0.31", 905, status=DELIVERING,
          delivery_time_ms=1_800_000_000_000),  # a perpetual being delisted
    _spec("GONEUSDT", "GONE", "USDT", 4, "0.0001", "1", "0.02", 906, status=CLOSED,
          delivery_time_ms=1_760_000_000_000),  # delisted: instruments-info only, no data
)


def listed_spec(symbol: str, existing: InstrumentSpec | None, symbol_id: int, launch_time_ms: int) -> InstrumentSpec:
    """The spec after `FakeBybit.list_symbol(symbol)`: an existing contract trades (again); a new one is a Trading
    USDT perpetual with BTCUSDT-like filters at a price of about 1.5 (4 decimals)."""
    if existing is not None:
        return replace(existing, status=TRADING, auction_phase="", delivery_time_ms=0)
    if not symbol.endswith("USDT") or len(symbol) < 5 or not symbol.isalnum() or not symbol.isupper():
        raise ValueError(f"cannot list {symbol!r}: a new USDT perpetual is named like 'NEWLYUSDT' (upper case)")
    return _spec(symbol, symbol[:-4], "USDT", 4, "0.0001", "1", "1.5", symbol_id, launch_time_ms=launch_time_ms)


# ---------------------------------------------------------------- instruments-info (pure)

def instrument_row(spec: InstrumentSpec) -> dict[str, Any]:
    """One `list` entry of instruments-info, in the documented linear order (LinearPerpetual example)."""
    tick, step, scale = spec.tick_size, spec.qty_step, spec.price_scale
    pre_listing = spec.status == PRE_LAUNCH
    row: dict[str, Any] = {
        "symbol": spec.symbol, "symbolId": spec.symbol_id, "contractType": spec.contract_type,
        "status": spec.status, "baseCoin": spec.base_coin, "quoteCoin": spec.quote_coin,
        "launchTime": str(spec.launch_time_ms), "deliveryTime": str(spec.delivery_time_ms),
        "deliveryFeeRate": "" if spec.is_perpetual else "0.0005", "priceScale": str(scale),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "5.00" if pre_listing else "100.00",
                           "leverageStep": "0.01"},
        "priceFilter": {"minPrice": format_decimal(tick, scale),
                        "maxPrice": format_decimal(spec.base_price * 20, scale),
                        "tickSize": format_decimal(tick, scale)},
        "lotSizeFilter": {"maxOrderQty": _qty(spec, step * 1_190_000), "minOrderQty": _qty(spec, step),
                          "qtyStep": _qty(spec, step), "postOnlyMaxOrderQty": _qty(spec, step * 1_190_000),
                          "maxMktOrderQty": _qty(spec, step * 500_000), "minNotionalValue": "5"},
        "unifiedMarginTrade": True, "fundingInterval": 480 if spec.is_perpetual else 0,
        "settleCoin": spec.quote_coin, "copyTrading": "both" if spec.is_usdt_perpetual else "none",
        "upperFundingRate": "0.00375" if spec.is_perpetual else "", "lowerFundingRate": "-0.00375" if spec.is_perpetual
        else "", "isPreListing": pre_listing, "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"}, "symbolType": "",
    }
    if pre_listing:
        row["preListingInfo"] = {"curAuctionPhase": spec.auction_phase, "phases": [],
                                 "auctionFeeInfo": {"auctionFeeRate": "0", "takerFeeRate": "0.001",
                                                    "makerFeeRate": "0.0004"}}
    return row


def make_cursor(last_symbol: str, first_symbol: str) -> str:
    """A `nextPageCursor` shaped like the documented one, "first%3DBIOUSDT%26last%3DBIOUSDT" (the URL-encoded
    `first=<first of the page>&last=<last of the page>`): the next page starts after `last`."""
    return quote(f"first={first_symbol}&last={last_symbol}", safe="")


def parse_cursor(cursor: str) -> str | None:
    """The `last` symbol a cursor of `make_cursor` names, or None when it is no such cursor. Accepts the token as
    sent and once more URL-decoded (a client that passes it through its HTTP library's encoder, or not)."""
    text = unquote(cursor) if "%" in cursor else cursor
    fields = parse_qs(text, keep_blank_values=True, strict_parsing=False)
    last = fields.get("last")
    return last[0] if last and last[0] else None


@dataclass(frozen=True)
class InstrumentsPage:
    rows: tuple[dict[str, Any], ...]
    next_cursor: str


def instruments_page(specs: Iterable[InstrumentSpec], *, status: str | None, symbol: str | None, limit: int,
                     after: str | None) -> InstrumentsPage:
    """A page of instruments-info. Docs: the `status` filter "By default returns only `Trading` symbols" (linear);
    a `symbol` narrows to that one. Rows are sorted by symbol; `after` is the `last` of the previous page's
    cursor. The cursor is empty on the last page (the docs do not say; the fake's choice)."""
    wanted = status if status is not None else TRADING
    chosen = sorted((spec for spec in specs if spec.status == wanted and symbol in (None, spec.symbol)),
                    key=lambda spec: spec.symbol)
    if after is not None:
        chosen = [spec for spec in chosen if spec.symbol > after]
    page = chosen[:limit]
    cursor = make_cursor(page[-1].symbol, page[0].symbol) if page and len(chosen) > limit else ""
    return InstrumentsPage(tuple(instrument_row(spec) for spec in page), cursor)


# ---------------------------------------------------------------- per-symbol state and the random walk

@dataclass
class Book:
    """One symbol's order book: price -> size per side, and the `u` of every documented depth's stream."""

    bids: dict[Decimal, Decimal]
    asks: dict[Decimal, Decimal]
    update_ids: dict[int, int]  # depth -> the `u` of its last message
    views: dict[int, tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]]
    seq: int  # the cross sequence of the last change

    def top(self, depth: int) -> tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]:
        bids = tuple(sorted(self.bids.items(), reverse=True)[:depth])
        asks = tuple(sorted(self.asks.items())[:depth])
        return bids, asks


@dataclass
class SymbolState:
    """Everything the fake knows of one symbol; mutated by `BybitMarket.step` only."""

    spec: InstrumentSpec
    book: Book
    last: Decimal
    direction: str
    prev_24h: Decimal
    prev_1h: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    turnover: Decimal
    mark: Decimal
    index: Decimal
    open_interest: Decimal
    funding_rate: Decimal
    cross_seq: int
    ticker: dict[str, str] = field(default_factory=dict)  # the full merged ticker as last pushed (or built)
    tape: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_TRADES_KEPT))
    last_l1_push_ms: int = 0


Event = tuple[str, dict[str, Any]]  # (topic, message) to push to every subscriber of the topic


class BybitMarket:
    """Owns the instruments and the random walk. Not thread-safe: drive it from one thread."""

    def __init__(self, specs: Iterable[InstrumentSpec], *, seed: int, now_ms: int, book_deltas: bool = False) -> None:
        self._rng = random.Random(seed)
        self._book_deltas = book_deltas
        self._specs: dict[str, InstrumentSpec] = {}
        self._states: dict[str, SymbolState] = {}
        for spec in specs:
            self._add(spec, now_ms)

    # ------------------------------------------------------------ instruments

    def specs(self) -> Mapping[str, InstrumentSpec]:
        return MappingProxyType(dict(self._specs))

    def has_topics(self, symbol: str) -> bool:
        spec = self._specs.get(symbol)
        return spec is not None and spec.has_topics

    def feeds_data(self, symbol: str) -> bool:
        spec = self._specs.get(symbol)
        return spec is not None and spec.feeds_data

    def set_spec(self, spec: InstrumentSpec, now_ms: int) -> None:
        """Add or change an instrument (listing, delisting); a new one gets a fresh market."""
        if spec.symbol in self._states:
            self._specs[spec.symbol] = spec
            self._states[spec.symbol].spec = spec
        else:
            self._add(spec, now_ms)

    def _add(self, spec: InstrumentSpec, now_ms: int) -> None:
        self._specs[spec.symbol] = spec
        self._states[spec.symbol] = _initial_state(spec, self._rng, now_ms)

    # ------------------------------------------------------------ the walk

    def step(self, now_ms: int, frozen: frozenset[str] = frozenset()) -> list[Event]:
        """Advance every symbol that feeds data (and is not frozen) by one tick; return the messages it made, in
        order: per symbol its trades, then its order book depths, then its ticker delta (when anything changed)."""
        events: list[Event] = []
        for symbol, state in self._states.items():
            if state.spec.feeds_data and symbol not in frozen:
                events.extend(self._step_symbol(state, now_ms))
        return events

    def _step_symbol(self, state: SymbolState, now_ms: int) -> list[Event]:
        rng, spec = self._rng, state.spec
        events: list[Event] = []
        trades: list[dict[str, Any]] = []
        book_changed = False
        if rng.random() < P_TRADE:
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                trades.extend(self._take(state, now_ms))
            book_changed = True
        if rng.random() < P_BOOK:
            _shuffle_liquidity(state, rng)
            state.cross_seq += 1
            book_changed = True
        if book_changed:
            _refill(state, rng)
            state.book.seq = state.cross_seq
        if rng.random() < P_MARK:
            state.mark = _quantize(state.last * _factor(rng, 0.0002), spec.tick_size)
            state.index = _quantize(state.last * _factor(rng, 0.0003), spec.tick_size)
            state.open_interest = max(spec.qty_step, state.open_interest + spec.qty_step * rng.randint(-500, 500))
        if spec.is_perpetual and rng.random() < P_FUNDING:
            state.funding_rate = Decimal(rng.randint(-30, 120)) / Decimal(1_000_000)
        if trades:
            for start in range(0, len(trades), MAX_TRADES_PER_MESSAGE):
                events.append((f"publicTrade.{spec.symbol}", {
                    "topic": f"publicTrade.{spec.symbol}", "type": "snapshot", "ts": now_ms,
                    "data": trades[start:start + MAX_TRADES_PER_MESSAGE]}))
        if book_changed:
            events.extend(self._book_events(state, now_ms))
        ticker = ticker_fields(state, now_ms)
        delta = {key: value for key, value in ticker.items() if state.ticker.get(key) != value}
        state.ticker = ticker
        if delta:
            topic = f"tickers.{spec.symbol}"
            events.append((topic, {"topic": topic, "type": "delta", "data": {"symbol": spec.symbol, **delta},
                                   "cs": state.cross_seq, "ts": now_ms}))
        return events

    def _take(self, state: SymbolState, now_ms: int) -> list[dict[str, Any]]:
        """One taker order sweeping 1-3 levels of the opposite side: one trade per level, all with the same `seq`
        (trade docs: "multiple messages may be sent for the same `seq`"; `seq` is the cross sequence)."""
        rng, spec, book = self._rng, state.spec, state.book
        side = rng.choice(("Buy", "Sell"))
        resting = book.asks if side == "Buy" else book.bids
        levels = sorted(resting, reverse=side == "Sell")[:rng.choice((1, 1, 1, 2, 2, 3))]
        state.cross_seq += 1
        trades = []
        for number, price in enumerate(levels):
            available = resting[price]
            steps = int(available / spec.qty_step)
            take = available if number < len(levels) - 1 else spec.qty_step * rng.randint(1, max(1, steps))
            take = min(take, available)
            if take >= available:
                del resting[price]
            else:
                resting[price] = available - take
            state.direction = _tick_direction(state.last, price, state.direction)
            state.last = price
            state.volume += take
            state.turnover += take * price
            state.high, state.low = max(state.high, price), min(state.low, price)
            trade = {"T": now_ms - TRADE_TO_TS_MS, "s": spec.symbol, "S": side, "v": _qty(spec, take),
                     "p": _price(spec, price), "L": state.direction,
                     "i": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)), "BT": False, "RPI": False,
                     "seq": state.cross_seq}
            trades.append(trade)
            state.tape.append(trade)
        return trades

    def _book_events(self, state: SymbolState, now_ms: int) -> list[Event]:
        """The messages of every depth whose top levels changed: `u` + 1, a delta of the changed levels ("0" for a
        level that left), or for level 1 a snapshot ("Linear ... level 1 data has `snapshot` message only")
        unless `book_deltas` is on."""
        events: list[Event] = []
        book = state.book
        for depth in BOOK_DEPTHS:
            view = book.top(depth)
            old = book.views[depth]
            if view == old:
                continue
            book.views[depth] = view
            book.update_ids[depth] += 1
            if depth == 1 and not self._book_deltas:
                events.append(book_message(state, depth, "snapshot", view, now_ms))
                state.last_l1_push_ms = now_ms
            else:
                changed = (_changed_levels(old[0], view[0], descending=True),
                           _changed_levels(old[1], view[1], descending=False))
                events.append(book_message(state, depth, "delta", changed, now_ms))
                if depth == 1:
                    state.last_l1_push_ms = now_ms
        return events

    def resends(self, now_ms: int, interval_ms: int) -> list[Event]:
        """Level-1 snapshots re-sent with an unchanged `u` for symbols whose level 1 was not pushed for
        `interval_ms` (orderbook docs: "if 3 seconds have elapsed without a change in the orderbook, a `snapshot`
        message will be pushed again, and the field `u` will be the same as that in the previous message")."""
        events: list[Event] = []
        for state in self._states.values():
            if state.spec.feeds_data and now_ms - state.last_l1_push_ms >= interval_ms:
                events.append(book_message(state, 1, "snapshot", state.book.views[1], now_ms))
                state.last_l1_push_ms = now_ms
        return events

    def restart_books(self, symbols: Iterable[str] | None, now_ms: int) -> list[Event]:
        """A (simulated) restart of the order book service: every depth of `symbols` (None: all that feed data)
        starts again at `u` = 1 with a snapshot (orderbook docs: "Occasionally, you'll receive "u"=1, which is a
        snapshot data due to the restart of the service. So please overwrite your local orderbook")."""
        names = list(self._states) if symbols is None else list(symbols)
        unknown = [name for name in names if name not in self._states]
        if unknown:
            raise ValueError(f"restart_orderbook: unknown symbol {unknown[0]!r}; known: {sorted(self._states)}")
        events: list[Event] = []
        for name in names:
            state = self._states[name]
            if not state.spec.feeds_data:
                continue
            for depth in BOOK_DEPTHS:
                state.book.update_ids[depth] = 1
                events.append(book_message(state, depth, "snapshot", state.book.views[depth], now_ms))
            state.last_l1_push_ms = now_ms
        return events

    # ------------------------------------------------------------ reads

    def snapshot_message(self, topic: str, now_ms: int) -> dict[str, Any] | None:
        """The first message of a new subscription: a ticker or order book `snapshot` of now; None for trades
        (pushed as they happen) and for symbols without a feed."""
        kind, _, rest = topic.partition(".")
        if kind == "tickers":
            state = self._states.get(rest)
            if state is None or not state.spec.feeds_data:
                return None
            return {"topic": topic, "type": "snapshot", "data": dict(state.ticker), "cs": state.cross_seq,
                    "ts": now_ms}
        if kind == "orderbook":
            depth_text, _, symbol = rest.partition(".")
            state = self._states.get(symbol)
            if state is None or not state.spec.feeds_data:
                return None
            return book_message(state, int(depth_text), "snapshot", state.book.views[int(depth_text)], now_ms)[1]
        return None

    def ticker(self, symbol: str) -> dict[str, str] | None:
        state = self._states.get(symbol)
        return dict(state.ticker) if state is not None and state.spec.has_topics else None

    def book(self, symbol: str, depth: int = REST_BOOK_DEPTH) -> dict[str, Any] | None:
        """{"s","b","a","u","seq"} of the top `depth` levels now (what a client that applied every message of
        `orderbook.{depth}.{symbol}` holds), with that depth's `u`."""
        state = self._states.get(symbol)
        if state is None or not state.spec.has_topics:
            return None
        return _book_data(state, depth, state.book.top(depth))

    def recent_trades(self, symbol: str, limit: int) -> list[dict[str, Any]]:
        """`GET /v5/market/recent-trade` rows, newest first (the order is not documented; the fake's choice)."""
        state = self._states[symbol]
        spec = state.spec
        rows = list(state.tape)[-limit:][::-1]
        return [{"execId": row["i"], "symbol": spec.symbol, "price": row["p"], "size": row["v"], "side": row["S"],
                 "time": str(row["T"]), "isBlockTrade": row["BT"], "isRPITrade": row["RPI"],
                 "seq": str(row["seq"])} for row in rows]

    def rest_ticker(self, symbol: str) -> dict[str, str]:
        """One `list` row of `GET /v5/market/tickers?category=linear`, in the documented order."""
        state = self._states[symbol]
        ws = state.ticker
        futures = not state.spec.is_perpetual
        row = {key: ws[key] for key in ("symbol", "lastPrice", "indexPrice", "markPrice", "prevPrice24h",
                                        "price24hPcnt", "highPrice24h", "lowPrice24h", "prevPrice1h",
                                        "openInterest", "openInterestValue")}
        if not futures:
            row.update(singleOpenInterest=ws["singleOpenInterest"],
                       singleOpenInterestValue=ws["singleOpenInterestValue"])
        row.update(turnover24h=ws["turnover24h"], volume24h=ws["volume24h"], fundingRate=ws["fundingRate"],
                   nextFundingTime=ws["nextFundingTime"],
                   predictedDeliveryPrice=ws.get("predictedDeliveryPrice", ""), basisRate=ws.get("basisRate", ""),
                   basis=ws.get("basis", ""), deliveryFeeRate=ws.get("deliveryFeeRate", ""),
                   deliveryTime=str(state.spec.delivery_time_ms), ask1Size=ws["ask1Size"],
                   bid1Price=ws["bid1Price"], ask1Price=ws["ask1Price"], bid1Size=ws["bid1Size"],
                   preOpenPrice=ws.get("preOpenPrice", ""), preQty=ws.get("preQty", ""),
                   curPreListingPhase=ws.get("curPreListingPhase", ""),
                   fundingIntervalHour=ws.get("fundingIntervalHour", ""), fundingCap=ws.get("fundingCap", ""),
                   basisRateYear=ws.get("basisRateYear", ""))
        return row

    def rest_orderbook(self, symbol: str, limit: int, now_ms: int) -> dict[str, Any]:
        """`GET /v5/market/orderbook` result: {"s","a","b","ts","u","seq","cts"} (documented example order)."""
        state = self._states[symbol]
        data = _book_data(state, limit, state.book.top(limit))
        data["u"] = state.book.update_ids[REST_BOOK_DEPTH]
        return {"s": data["s"], "a": data["a"], "b": data["b"], "ts": now_ms, "u": data["u"], "seq": data["seq"],
                "cts": now_ms - CTS_TO_TS_MS}


# ---------------------------------------------------------------- wire messages

def book_message(state: SymbolState, depth: int, kind: str, levels: Sequence[Sequence[tuple[Decimal, Decimal]]],
                 now_ms: int) -> Event:
    """An `orderbook.{depth}.{symbol}` message. Orderbook docs: "Futures (Level 1): the "ts" field appears
    **before** the "type" field ...; Futures (all other levels): the "ts" field appears **after** the "type"
    field"; `cts` is the matching engine's time."""
    topic = f"orderbook.{depth}.{state.spec.symbol}"
    data = {"s": state.spec.symbol, "b": _levels(state.spec, levels[0]), "a": _levels(state.spec, levels[1]),
            "u": state.book.update_ids[depth], "seq": state.book.seq}
    if depth == 1:
        return topic, {"topic": topic, "ts": now_ms, "type": kind, "data": data, "cts": now_ms - CTS_TO_TS_MS}
    return topic, {"topic": topic, "type": kind, "ts": now_ms, "data": data, "cts": now_ms - CTS_TO_TS_MS}


def ticker_fields(state: SymbolState, now_ms: int) -> dict[str, str]:
    """The full linear ticker, every value a string, in the documented order (ticker docs, LinearPerpetual and
    LinearFutures examples; the table adds singleOpenInterest / singleOpenInterestValue)."""
    spec = state.spec
    bids, asks = state.book.views[1]
    bid, bid_size = bids[0] if bids else (Decimal(0), Decimal(0))
    ask, ask_size = asks[0] if asks else (Decimal(0), Decimal(0))
    oi_value = state.open_interest * state.mark
    fields = {
        "symbol": spec.symbol, "tickDirection": state.direction, "price24hPcnt": price_change(state),
        "lastPrice": _price(spec, state.last), "prevPrice24h": _price(spec, state.prev_24h),
        "highPrice24h": _price(spec, state.high), "lowPrice24h": _price(spec, state.low),
        "prevPrice1h": _price(spec, state.prev_1h), "markPrice": _price(spec, state.mark),
        "indexPrice": _price(spec, state.index), "openInterest": _qty(spec, state.open_interest),
        "openInterestValue": format_decimal(oi_value, 2),
    }
    if spec.is_perpetual:
        fields.update(singleOpenInterest=_qty(spec, state.open_interest / 2),
                      singleOpenInterestValue=format_decimal(oi_value / 2, 2))
    fields.update(turnover24h=format_decimal(state.turnover, 4), volume24h=format_decimal(state.volume, 4))
    if spec.is_perpetual:
        fields.update(fundingIntervalHour="8", fundingCap="0.005", nextFundingTime=str(next_funding_ms(now_ms)),
                      fundingRate=_rate(state.funding_rate))
    else:
        basis = state.last - state.index
        fields.update(deliveryTime=_iso_utc(spec.delivery_time_ms), basisRate=format_decimal(basis / state.index, 8),
                      deliveryFeeRate="0.0005", predictedDeliveryPrice="0.00", basis=_price(spec, basis),
                      basisRateYear=format_decimal(basis / state.index * 4, 8), nextFundingTime="", fundingRate="")
    fields.update(bid1Price=_price(spec, bid), bid1Size=_qty(spec, bid_size), ask1Price=_price(spec, ask),
                  ask1Size=_qty(spec, ask_size))
    if spec.is_perpetual:
        pre = spec.status == PRE_LAUNCH
        fields.update(preOpenPrice=_price(spec, state.last) if pre else "", preQty=_qty(spec, state.volume) if pre
                      else "", curPreListingPhase=spec.auction_phase if pre else "")
    return fields


def price_change(state: SymbolState) -> str:
    """price24hPcnt = (last - prev24h) / prev24h as a fraction with 6 decimals, cut toward zero: the documented
    examples (66666.60 vs 79206.20 -> "-0.158315", 120635.50 vs 105595.90 -> "0.142425") are truncated."""
    change = ((state.last - state.prev_24h) / state.prev_24h).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
    text = format(change, "f")
    return "0" if change == 0 else text


def next_funding_ms(now_ms: int) -> int:
    """The next 00:00 / 08:00 / 16:00 UTC after `now_ms` (fundingInterval 480 minutes)."""
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def _book_data(state: SymbolState, depth: int,
               view: Sequence[Sequence[tuple[Decimal, Decimal]]]) -> dict[str, Any]:
    return {"s": state.spec.symbol, "b": _levels(state.spec, view[0]), "a": _levels(state.spec, view[1]),
            "u": state.book.update_ids.get(depth, state.book.update_ids[REST_BOOK_DEPTH]), "seq": state.book.seq}


def _levels(spec: InstrumentSpec, levels: Iterable[tuple[Decimal, Decimal]]) -> list[list[str]]:
    """[price, size] string pairs; a deleted level's size is "0" as in the documented delta example."""
    return [[_price(spec, price), _qty(spec, size) if size else "0"] for price, size in levels]


def _changed_levels(old: Sequence[tuple[Decimal, Decimal]], new: Sequence[tuple[Decimal, Decimal]], *,
                    descending: bool) -> list[tuple[Decimal, Decimal]]:
    """The delta between two views of one side: new or resized levels, and removed ones with size 0 (orderbook
    docs: "If you receive an amount that is `0`, delete the entry"); in the side's order."""
    before, after = dict(old), dict(new)
    changed = [(price, size) for price, size in new if before.get(price) != size]
    changed += [(price, Decimal(0)) for price, _ in old if price not in after]
    return sorted(changed, reverse=descending)


def _price(spec: InstrumentSpec, value: Decimal) -> str:
    return format_decimal(value, spec.price_scale)


def _qty(spec: InstrumentSpec, value: Decimal) -> str:
    return format_decimal(value, spec.qty_decimals)


def _rate(value: Decimal) -> str:
    """A funding rate as Bybit writes it, without trailing zeros: "0.0001", "-0.005"."""
    text = format(value.normalize(), "f")
    return "0" if Decimal(text) == 0 else text


def _iso_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantize(value: Decimal, step: Decimal) -> Decimal:
    return max((value / step).to_integral_value(rounding=ROUND_HALF_UP) * step, step)


def _factor(rng: random.Random, sigma: float) -> Decimal:
    return Decimal(repr(1 + rng.gauss(0.0, sigma)))


def _tick_direction(previous: Decimal, price: Decimal, direction: str) -> str:
    """enum tickDirection: a rise is PlusTick, a drop MinusTick, the same price keeps the sense of the last move."""
    if price > previous:
        return PLUS_TICK
    if price < previous:
        return MINUS_TICK
    return ZERO_PLUS_TICK if direction in (PLUS_TICK, ZERO_PLUS_TICK) else ZERO_MINUS_TICK


def _random_size(spec: InstrumentSpec, rng: random.Random) -> Decimal:
    return spec.qty_step * rng.randint(1, 3000)


def _shuffle_liquidity(state: SymbolState, rng: random.Random) -> None:
    """Resting orders come and go near the top: resize, add or cancel 1-3 levels among the first ten."""
    spec, book = state.spec, state.book
    for _ in range(rng.randint(1, 3)):
        side = book.bids if rng.random() < 0.5 else book.asks
        ordered = sorted(side, reverse=side is book.bids)[:10]
        if not ordered:
            continue
        action = rng.random()
        if action < 0.6:
            side[rng.choice(ordered)] = _random_size(spec, rng)
        elif action < 0.8 and len(side) > MIN_BOOK_LEVELS:
            del side[rng.choice(ordered)]
        else:
            step = spec.tick_size if side is book.asks else -spec.tick_size
            price = ordered[-1] + step
            if price > 0 and price not in side:
                side[price] = _random_size(spec, rng)


def _refill(state: SymbolState, rng: random.Random) -> None:
    """Keep a tight spread (new orders inside it, on either side: the walk) and 40-60 levels per side."""
    spec, book = state.spec, state.book
    tick = spec.tick_size
    while book.bids and book.asks and min(book.asks) - max(book.bids) > tick * 2:
        if rng.random() < 0.5:
            book.bids[max(book.bids) + tick] = _random_size(spec, rng)
        else:
            book.asks[min(book.asks) - tick] = _random_size(spec, rng)
    if not book.bids:
        book.bids[max(tick, min(book.asks) - tick)] = _random_size(spec, rng)
    if not book.asks:
        book.asks[max(book.bids) + tick] = _random_size(spec, rng)
    for side, direction in ((book.bids, -1), (book.asks, 1)):
        while len(side) < MIN_BOOK_LEVELS:
            far = min(side) if direction < 0 else max(side)
            price = far + tick * direction * rng.randint(1, 2)
            if price <= 0:
                break
            side[price] = _random_size(spec, rng)
        while len(side) > BOOK_LEVELS:
            del side[min(side) if direction < 0 else max(side)]


def _initial_state(spec: InstrumentSpec, rng: random.Random, now_ms: int) -> SymbolState:
    tick = spec.tick_size
    prev_24h = _quantize(spec.base_price, tick)
    last = _quantize(prev_24h * Decimal(repr(1 + rng.uniform(-0.02, 0.02))), tick)
    high = max(_quantize(prev_24h * Decimal(repr(1 + rng.uniform(0.005, 0.04))), tick), prev_24h, last)
    low = min(_quantize(prev_24h * Decimal(repr(1 - rng.uniform(0.005, 0.04))), tick), prev_24h, last)
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    price = last
    for _ in range(BOOK_LEVELS // 2 + 10):
        bids[price] = _random_size(spec, rng)
        price -= tick * rng.randint(1, 2)
        if price <= 0:
            break
    price = last + tick
    for _ in range(BOOK_LEVELS // 2 + 10):
        asks[price] = _random_size(spec, rng)
        price += tick * rng.randint(1, 2)
    volume = spec.qty_step * rng.randint(1_000_000, 90_000_000)
    state = SymbolState(
        spec=spec, book=Book(bids, asks, dict.fromkeys(BOOK_DEPTHS, 0), {}, 0), last=last, direction=ZERO_PLUS_TICK,
        prev_24h=prev_24h, prev_1h=_quantize(last * Decimal(repr(1 + rng.uniform(-0.004, 0.004))), tick), high=high,
        low=low, volume=volume, turnover=volume * (high + low) / 2, mark=last, index=last,
        open_interest=spec.qty_step * rng.randint(1_000_000, 50_000_000),
        funding_rate=Decimal(rng.randint(-30, 120)) / Decimal(1_000_000), cross_seq=rng.randint(10**9, 9 * 10**10),
        last_l1_push_ms=now_ms)
    state.book.seq = state.cross_seq
    state.book.update_ids = {depth: rng.randint(10**6, 10**8) for depth in BOOK_DEPTHS}
    state.book.views = {depth: state.book.top(depth) for depth in BOOK_DEPTHS}
    state.ticker = ticker_fields(state, now_ms)
    return state
