"""Simulated market state (a seeded random walk per symbol) and Binance payload builders.

Pure: no sockets, no clock (callers pass times in ms), no asyncio. Decimals stay `Decimal` inside and become
strings on the wire, as Binance sends them (facts §2).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any

from tests.fakes.exchange_info import SymbolSpec

DAY_MS = 86_400_000
MINUTE_MS = 60_000

# COIN-M rows leak into USD-M all-market arrays (facts §2); the fake sends this one on `!ticker@arr`.
COIN_M_BTCUSD_PERP = SymbolSpec(
    symbol="BTCUSD_PERP", pair="BTCUSD", contract_type="PERPETUAL", quote_asset="USD", status="TRADING",
    price_decimals=1, qty_decimals=0, tick_size=Decimal("0.1"), step_size=Decimal("1"), symbol_type=2,
)
COIN_M_CONTRACT_USD = Decimal(100)

# Plausible 2026 prices so numbers in logs look familiar; other symbols get a price derived from their tick size.
BASE_PRICES: Mapping[str, Decimal] = MappingProxyType({
    "BTCUSDT": Decimal("86000"), "ETHUSDT": Decimal("3200"), "BNBUSDT": Decimal("610"),
    "SOLUSDT": Decimal("140"), "ADAUSDT": Decimal("0.45"), "XRPUSDT": Decimal("2.1"),
    "DOGEUSDT": Decimal("0.16"), "BCHUSDT": Decimal("450"), "LTCUSDT": Decimal("90"),
    "LINKUSDT": Decimal("14"), "DOTUSDT": Decimal("4.2"), "BTCUSDT_260327": Decimal("86500"),
    "BTCUSDT_210924": Decimal("86400"), "ETHUSDT_210924": Decimal("3210"), "BTCBUSD": Decimal("86000"),
    "ETHBUSD": Decimal("3200"), "BTCUSDC": Decimal("86000"), "XAUUSDT": Decimal("2650"),
    "NEWCOINUSDT": Decimal("0.05"), "BTCUSD_PERP": Decimal("86000"),
})

STEP_VOLATILITY = 0.0005  # standard deviation of one tick's relative price move


@dataclass(frozen=True)
class Quote:
    """The 24 h statistics of one symbol at one tick."""

    spec: SymbolSpec
    last: Decimal
    last_qty: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    quote_volume: Decimal
    first_id: int
    last_id: int
    bid_qty: Decimal
    ask_qty: Decimal
    update_id: int
    # the aggregated trade of the last tick (`<s>@aggTrade`, facts §2): the fills first_tick_id..last_id
    agg_id: int
    first_tick_id: int
    tick_qty: Decimal
    buyer_is_maker: bool

    @property
    def count(self) -> int:
        return self.last_id - self.first_id + 1

    @property
    def bid(self) -> Decimal:
        return self.last

    @property
    def ask(self) -> Decimal:
        return self.last + self.spec.tick_size


@dataclass(frozen=True)
class MarketSnapshot:
    """Every quote at one tick; shared read-only by all connections."""

    usd_m: Mapping[str, Quote]
    coin_m: tuple[Quote, ...]


class Market:
    """Owns the random walk. Not thread-safe: drive it from one thread (the fake's event loop)."""

    def __init__(self, specs: Iterable[SymbolSpec], *, seed: int,
                 coin_margined: Iterable[SymbolSpec] = (COIN_M_BTCUSD_PERP,)) -> None:
        self._rng = random.Random(seed)
        usd_m = {spec.symbol: _initial_quote(spec, self._rng) for spec in specs}
        coin_m = tuple(_initial_quote(spec, self._rng) for spec in coin_margined)
        self._snapshot = MarketSnapshot(MappingProxyType(usd_m), coin_m)

    def snapshot(self) -> MarketSnapshot:
        return self._snapshot

    def add(self, specs: Iterable[SymbolSpec]) -> MarketSnapshot:
        """Give the symbols of `specs` that have no quote yet one (a listing); they move from the next step."""
        held = self._snapshot.usd_m
        new = {spec.symbol: _initial_quote(spec, self._rng) for spec in specs if spec.symbol not in held}
        if new:
            self._snapshot = MarketSnapshot(MappingProxyType({**held, **new}), self._snapshot.coin_m)
        return self._snapshot

    def step(self) -> MarketSnapshot:
        """Advance every symbol by one tick and return the new snapshot."""
        usd_m = {symbol: _step_quote(quote, self._rng) for symbol, quote in self._snapshot.usd_m.items()}
        coin_m = tuple(_step_quote(quote, self._rng) for quote in self._snapshot.coin_m)
        self._snapshot = MarketSnapshot(MappingProxyType(usd_m), coin_m)
        return self._snapshot


# `GET /fapi/v1/aggTrades` answers at most 1000 rows ("limit: Default 500; max 1000"): the tape keeps as many.
TAPE_LENGTH = 1000


class TradeTape:
    """The last TAPE_LENGTH aggregated trades of every USD-M symbol: the trades of every tick, streamed or not.
    A tick costs one append; rows are built only when asked for. Not thread-safe, like Market."""

    def __init__(self) -> None:
        self._ticks: deque[tuple[MarketSnapshot, int]] = deque(maxlen=TAPE_LENGTH)

    def record(self, snapshot: MarketSnapshot, event_ms: int) -> None:
        """The trades of the tick `snapshot`, which happened at `event_ms` (the stream payloads' `E`)."""
        self._ticks.append((snapshot, event_ms))

    def rows(self, symbol: str) -> Sequence[dict[str, Any]]:
        """`GET /fapi/v1/aggTrades` rows of `symbol`, oldest first (a symbol listed later has fewer)."""
        return tuple(rest_agg_trade(agg_trade_payload(snapshot.usd_m[symbol], event_ms))
                     for snapshot, event_ms in self._ticks if symbol in snapshot.usd_m)


# ---------------------------------------------------------------- wire payloads (facts §2 and §5)

def ticker_payload(quote: Quote, event_ms: int) -> dict[str, Any]:
    """`<s>@ticker` / `!ticker@arr` row, event `24hrTicker`, in the 2026 wire order."""
    spec = quote.spec
    return {
        "e": "24hrTicker", "E": event_ms, "s": spec.symbol, "ps": spec.pair,
        "p": _price(quote, quote.last - quote.open), "P": _percent(quote), "w": _weighted(quote),
        "c": _price(quote, quote.last), "Q": _qty(quote, quote.last_qty), "o": _price(quote, quote.open),
        "h": _price(quote, quote.high), "l": _price(quote, quote.low), "v": _qty(quote, quote.volume),
        "q": _quote_volume(quote), "O": statistics_open_time(event_ms), "C": event_ms,
        "F": quote.first_id, "L": quote.last_id, "n": quote.count, "st": spec.symbol_type,
    }


def mini_ticker_payload(quote: Quote, event_ms: int) -> dict[str, Any]:
    """`<s>@miniTicker` / `!miniTicker@arr` row, event `24hrMiniTicker`."""
    spec = quote.spec
    return {
        "e": "24hrMiniTicker", "E": event_ms, "s": spec.symbol, "ps": spec.pair,
        "c": _price(quote, quote.last), "o": _price(quote, quote.open), "h": _price(quote, quote.high),
        "l": _price(quote, quote.low), "v": _qty(quote, quote.volume), "q": _quote_volume(quote),
        "st": spec.symbol_type,
    }


def book_ticker_payload(quote: Quote, event_ms: int) -> dict[str, Any]:
    """`<s>@bookTicker` (route /public), event `bookTicker`."""
    spec = quote.spec
    return {
        "e": "bookTicker", "u": quote.update_id, "s": spec.symbol, "ps": spec.pair,
        "b": _price(quote, quote.bid), "B": _qty(quote, quote.bid_qty),
        "a": _price(quote, quote.ask), "A": _qty(quote, quote.ask_qty),
        "T": event_ms - 1, "E": event_ms, "st": spec.symbol_type,
    }


# aggTrade's trade time lies this long before the event time (captures: 2 ms, 154 ms, 157 ms)
TRADE_TO_EVENT_MS = 2


def agg_trade_payload(quote: Quote, event_ms: int) -> dict[str, Any]:
    """`<s>@aggTrade` (route /market), event `aggTrade`, in the 2026 wire order: the tick's fills at its last
    price, aggregated; `nq` (the quantity without RPI orders) equals `q` (the fake has no RPI orders)."""
    spec = quote.spec
    qty = _qty(quote, quote.tick_qty)
    return {
        "e": "aggTrade", "E": event_ms, "a": quote.agg_id, "s": spec.symbol, "p": _price(quote, quote.last),
        "q": qty, "nq": qty, "f": quote.first_tick_id, "l": quote.last_id, "T": event_ms - TRADE_TO_EVENT_MS,
        "m": quote.buyer_is_maker, "st": spec.symbol_type,
    }


def rest_agg_trade(payload: Mapping[str, Any]) -> dict[str, Any]:
    """One row of `GET /fapi/v1/aggTrades` from the stream payload of the same trade (documented fields only)."""
    return {key: payload[key] for key in ("a", "p", "q", "f", "l", "T", "m")}


def rest_book_ticker(quote: Quote, now_ms: int) -> dict[str, Any]:
    """One object of `GET /fapi/v1/ticker/bookTicker`, as documented (USD-M): no update id, `time` the
    transaction time."""
    return {
        "symbol": quote.spec.symbol,
        "bidPrice": _price(quote, quote.bid), "bidQty": _qty(quote, quote.bid_qty),
        "askPrice": _price(quote, quote.ask), "askQty": _qty(quote, quote.ask_qty),
        "time": now_ms,
    }


def rest_ticker_24hr(quote: Quote, now_ms: int) -> dict[str, Any]:
    """One object of `GET /fapi/v1/ticker/24hr`."""
    return {
        "symbol": quote.spec.symbol,
        "priceChange": _price(quote, quote.last - quote.open),
        "priceChangePercent": _percent(quote),
        "weightedAvgPrice": _weighted(quote),
        "lastPrice": _price(quote, quote.last),
        "lastQty": _qty(quote, quote.last_qty),
        "openPrice": _price(quote, quote.open),
        "highPrice": _price(quote, quote.high),
        "lowPrice": _price(quote, quote.low),
        "volume": _qty(quote, quote.volume),
        "quoteVolume": _quote_volume(quote),
        "openTime": statistics_open_time(now_ms),
        "closeTime": now_ms,
        "firstId": quote.first_id,
        "lastId": quote.last_id,
        "count": quote.count,
    }


def rest_ticker_price(quote: Quote, now_ms: int) -> dict[str, Any]:
    """One object of `GET /fapi/v1/ticker/price`."""
    return {"symbol": quote.spec.symbol, "price": _price(quote, quote.last), "time": now_ms}


def statistics_open_time(now_ms: int) -> int:
    """Start of the rolling 24 h window, floored to the minute as in captured tickers."""
    return (now_ms - DAY_MS) // MINUTE_MS * MINUTE_MS


def format_decimal(value: Decimal, places: int) -> str:
    """`value` with exactly `places` decimals, never `-0.00`."""
    text = format(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), "f")
    return text[1:] if text.startswith("-") and Decimal(text) == 0 else text


def _price(quote: Quote, value: Decimal) -> str:
    return format_decimal(value, quote.spec.price_decimals)


def _qty(quote: Quote, value: Decimal) -> str:
    return format_decimal(value, quote.spec.qty_decimals)


def _percent(quote: Quote) -> str:
    return format_decimal((quote.last - quote.open) / quote.open * 100, 3)


def _coin_margined(quote: Quote) -> bool:
    return quote.spec.symbol_type == 2


def _weighted(quote: Quote) -> str:
    if _coin_margined(quote):  # volume in contracts, quote volume in base asset
        return format_decimal(quote.volume * COIN_M_CONTRACT_USD / quote.quote_volume, 8)
    average = min(max(quote.quote_volume / quote.volume, quote.low), quote.high)
    return _price(quote, average)


def _quote_volume(quote: Quote) -> str:
    return format_decimal(quote.quote_volume, 8 if _coin_margined(quote) else 2)


# ---------------------------------------------------------------- the random walk

def _quantize(value: Decimal, step: Decimal) -> Decimal:
    return max((value / step).to_integral_value(rounding=ROUND_HALF_UP) * step, step)


def _notional(spec: SymbolSpec, qty: Decimal, price: Decimal) -> Decimal:
    if spec.symbol_type == 2:
        return qty * COIN_M_CONTRACT_USD / price
    return qty * price


def _initial_quote(spec: SymbolSpec, rng: random.Random) -> Quote:
    base = BASE_PRICES.get(spec.symbol)
    if base is None:
        base = spec.tick_size * Decimal(repr(10 ** rng.uniform(3.0, 4.5)))
    open_price = _quantize(base, spec.tick_size)
    last = _quantize(open_price * Decimal(repr(1 + rng.uniform(-0.01, 0.01))), spec.tick_size)
    high = max(_quantize(open_price * Decimal(repr(1 + rng.uniform(0.005, 0.04))), spec.tick_size), open_price, last)
    low = min(_quantize(open_price * Decimal(repr(1 - rng.uniform(0.005, 0.04))), spec.tick_size), open_price, last)
    volume = spec.step_size * rng.randint(1_000_000, 100_000_000)
    first_id = rng.randint(100_000_000, 9_000_000_000)
    last_id = first_id + rng.randint(10_000, 3_000_000)
    return Quote(
        spec=spec, last=last, last_qty=spec.step_size * rng.randint(1, 2000), open=open_price, high=high, low=low,
        volume=volume, quote_volume=_notional(spec, volume, (high + low) / 2), first_id=first_id,
        last_id=last_id, bid_qty=spec.step_size * rng.randint(1, 5000),
        ask_qty=spec.step_size * rng.randint(1, 5000), update_id=rng.randint(10**12, 9 * 10**12),
        agg_id=rng.randint(10**8, 4 * 10**9), first_tick_id=last_id, tick_qty=spec.step_size,
        buyer_is_maker=False,
    )


def _step_quote(quote: Quote, rng: random.Random) -> Quote:
    spec = quote.spec
    last = _quantize(quote.last * Decimal(repr(1 + rng.gauss(0.0, STEP_VOLATILITY))), spec.tick_size)
    trades = rng.randint(1, 40)
    last_qty = spec.step_size * rng.randint(1, 2000)
    traded = last_qty * trades
    return replace(
        quote, last=last, last_qty=last_qty, high=max(quote.high, last), low=min(quote.low, last),
        volume=quote.volume + traded, quote_volume=quote.quote_volume + _notional(spec, traded, last),
        last_id=quote.last_id + trades, bid_qty=spec.step_size * rng.randint(1, 5000),
        ask_qty=spec.step_size * rng.randint(1, 5000), update_id=quote.update_id + rng.randint(1, 50),
        agg_id=quote.agg_id + 1, first_tick_id=quote.last_id + 1, tick_qty=traded,
        buyer_is_maker=rng.random() < 0.5,
    )
