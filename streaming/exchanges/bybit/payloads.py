"""Bybit v5 payloads -> the core's models: the fields of the tickers, publicTrade and orderbook.1 topics, and the
REST answers of the same data. Pure: every field is checked, prices stay Bybit's exact decimal strings.

Fields and types from https://bybit-exchange.github.io/docs/v5/websocket/public/ticker, .../public/trade,
.../public/orderbook and, for REST (the envelope ``{"retCode":0,"retMsg":"OK","result":{...},"time":...}``),
https://bybit-exchange.github.io/docs/v5/market/tickers, .../market/recent-trade, .../market/orderbook,
.../market/instrument, with the enums of https://bybit-exchange.github.io/docs/v5/enum.

Trade ids. Bybit's trade id ``i`` is a UUID, which orders nothing, so ``Trade.trade_id`` is derived from the
trade's cross sequence ``seq``: ``seq * 1024 + n``, n the trade's place among the trades of that seq. The trade
documentation says a message holds up to 1024 trades, so several messages may carry one seq: ``TradeIds``
gives each next trade the last id + 1, which carries n on from one message to the next. Two connections that
saw the same trades give them the same ids; a connection subscribed between two messages of one seq numbers
the rest of that seq from 0 (the service then drops those few as repeats). Without ``seq`` the key is the
trade time ``T`` (ms), the same for the same trades while a millisecond holds at most 1024 of them. Ids never
go down on one ``TradeIds`` (past 1024 trades of a key, the next key starts at the last id + 1, which still
orders but may differ between connections). Ids stay below 2**53, exact in the double the cluster's Lua
compares them as.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any

from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.core.symbols import SYMBOL_PATTERN
from streaming.exchanges.bybit.topics import BYBIT
from streaming.exchanges.fields import MAX_EPOCH_MS, flag, integer, mapping, millis

__all__ = [
    "MAX_IDENTIFIER", "TICKER_FIELDS", "TRADE_SLOTS", "Level", "TradeIds", "TradeRow", "best_ask", "best_bid",
    "book_levels", "book_ticker_from_rest", "change_percent", "identifier", "millis", "next_page_cursor",
    "price_change", "rest_error", "ticker_fields", "ticker_from_fields", "ticker_from_rest", "trade_of", "trade_row",
    "tradable_usdt_perpetuals", "trades_from_rest",
]

# Bounds that keep a parsed value printable: finite JSON numbers, times within datetime's range (year 9999).
MAX_DECIMAL_LENGTH = 64
MAX_DECIMAL = Decimal("1e300")
MAX_IDENTIFIER = 2**53 - 1  # update ids and sequences: exact as a double (the cluster's Lua compares them so)
TRADE_SLOTS = 1024  # "Trade": "a single message may have up to 1024 trades"
MAX_TRADE_KEY = MAX_IDENTIFIER // TRADE_SLOTS - 1  # a seq or trade time whose ids stay below 2**53
MAX_PUBLIC_ID_LENGTH = 64
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # Bybit writes plain decimals: no exponent, no '+'
_DIGITS = re.compile(r"[0-9]{1,19}")
# Exact arithmetic on two decimals of at most 64 characters: any rounding would raise, none can happen.
_EXACT = Context(prec=2 * MAX_DECIMAL_LENGTH, traps=[InvalidOperation, Inexact, Overflow])

# What the Ticker shows, by Bybit's names: price, volume, high, low, open (and change), change %, quote volume.
TICKER_FIELDS = ("lastPrice", "volume24h", "highPrice24h", "lowPrice24h", "prevPrice24h", "price24hPcnt",
                 "turnover24h")

Level = tuple[str, str]  # (price, size), Bybit's strings


# -- fields ---------------------------------------------------------------------------------------------------
def _decimal_text(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_DECIMAL_LENGTH:
        raise ProtocolError(f"{what} must be a decimal string of at most {MAX_DECIMAL_LENGTH} characters, "
                            f"got {type(value).__name__}")
    if _PLAIN_DECIMAL.fullmatch(value) is None:
        raise ProtocolError(f"{what} is not a plain decimal: {value[:40]!r}")
    if not abs(Decimal(value)) < MAX_DECIMAL:
        raise ProtocolError(f"{what} is not a finite number in range: {value[:40]!r}")
    return value


def _decimal(payload: Mapping[str, Any], key: str) -> str:
    return _decimal_text(payload.get(key), f"field {key!r}")


def _integer_text(payload: Mapping[str, Any], key: str, maximum: int) -> int:
    """REST writes times and sequences as strings of digits ("time": "1672052955758")."""
    value = payload.get(key)
    if not isinstance(value, str) or _DIGITS.fullmatch(value) is None or int(value) > maximum:
        raise ProtocolError(f"field {key!r} must be a string of digits up to {maximum}, got {value!r:.40}")
    return int(value)


def identifier(payload: Mapping[str, Any], key: str, maximum: int = MAX_IDENTIFIER) -> int:
    """A non-negative integer field (``u``, ``seq``) up to ``maximum``."""
    return integer(payload, key, maximum)


def _symbol(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or SYMBOL_PATTERN.fullmatch(value.upper()) is None:
        raise ProtocolError(f"field {key!r} must be a symbol such as 'BTCUSDT', got {value!r:.40}")
    return value.upper()


def _plain(value: Decimal) -> str:
    """A decimal as plain text, without exponent and without a negative zero."""
    if value.is_zero():
        value = value.copy_abs()
    return format(value, "f")


# -- tickers ----------------------------------------------------------------------------------------------------
def ticker_fields(payload: Mapping[str, Any]) -> dict[str, str]:
    """The Ticker's fields that a ``tickers`` payload carries (a delta carries only what changed), each checked;
    Bybit's other fields (markPrice, openInterest, funding...) are ignored."""
    return {key: _decimal(payload, key) for key in TICKER_FIELDS if key in payload}


def price_change(last: str, previous: str) -> str:
    """``last - previous`` exactly, as a plain decimal with the scale of the inputs: "66666.60" - "79206.20"
    -> "-12539.60"."""
    return _plain(_EXACT.subtract(Decimal(last), Decimal(previous)))


def change_percent(ratio: str) -> str:
    """Bybit's ``price24hPcnt`` (a ratio) as a percentage, exactly: "0.0123" -> "1.23"."""
    return _plain(Decimal(ratio).scaleb(2, _EXACT))


def ticker_from_fields(symbol: str, fields: Mapping[str, str], event_time: int) -> Ticker:
    """The Ticker of a complete set of ``TICKER_FIELDS`` (already checked); ProtocolError names a missing one."""
    missing = [key for key in TICKER_FIELDS if key not in fields]
    if missing:
        raise ProtocolError(f"ticker of {symbol} lacks {', '.join(missing)}")
    return Ticker(
        symbol=symbol,
        price=fields["lastPrice"],
        volume=fields["volume24h"],
        high=fields["highPrice24h"],
        low=fields["lowPrice24h"],
        change=price_change(fields["lastPrice"], fields["prevPrice24h"]),
        change_percent=change_percent(fields["price24hPcnt"]),
        open=fields["prevPrice24h"],
        quote_volume=fields["turnover24h"],
        event_time=event_time,
        exchange=BYBIT,
    )


# -- trades -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TradeRow:
    """One public trade, checked, before it has a ``trade_id``."""

    symbol: str
    public_id: str
    price: str
    quantity: str
    buyer_is_maker: bool
    trade_time: int
    seq: int | None

    @property
    def key(self) -> tuple[str, int]:
        """What orders it: its cross sequence, or its trade time where it has none."""
        return ("seq", self.seq) if self.seq is not None else ("time", self.trade_time)


def _side(payload: Mapping[str, Any], key: str) -> bool:
    """Whether the buyer was the maker: the taker's side is ``Sell``."""
    value = payload.get(key)
    if value not in ("Buy", "Sell"):
        raise ProtocolError(f"field {key!r} must be 'Buy' or 'Sell', got {value!r:.40}")
    return bool(value == "Sell")


def _public_id(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_PUBLIC_ID_LENGTH:
        raise ProtocolError(f"field {key!r} must be a trade id string of 1-{MAX_PUBLIC_ID_LENGTH} characters, "
                            f"got {value!r:.40}")
    return value


def trade_row(payload: Mapping[str, Any]) -> TradeRow:
    """A row of a ``publicTrade`` message (``T s S v p L i BT RPI seq``), every field checked; the option-only
    fields (mP, iP, mIv, iv) are ignored."""
    mapping(payload, "trade row")
    if "L" in payload and not isinstance(payload["L"], str):
        raise ProtocolError(f"field 'L' must be a tick direction string, got {payload['L']!r:.40}")
    flag(payload, "BT")  # block trades are public trades too: kept
    if "RPI" in payload:
        flag(payload, "RPI")
    return TradeRow(
        symbol=_symbol(payload, "s"),
        public_id=_public_id(payload, "i"),
        price=_decimal(payload, "p"),
        quantity=_decimal(payload, "v"),
        buyer_is_maker=_side(payload, "S"),
        trade_time=millis(payload, "T"),
        seq=identifier(payload, "seq", MAX_TRADE_KEY) if "seq" in payload else None,
    )


def trade_of(row: TradeRow, trade_id: int, event_time: int) -> Trade:
    return Trade(
        symbol=row.symbol,
        trade_id=trade_id,
        price=row.price,
        quantity=row.quantity,
        buyer_is_maker=row.buyer_is_maker,
        first_trade_id=None,
        last_trade_id=None,
        trade_time=row.trade_time,
        event_time=event_time,
        exchange=BYBIT,
        public_id=row.public_id,
    )


class TradeIds:
    """The ``trade_id`` of each trade of one symbol, in the order Bybit sends them (see the module docstring):
    the first trade of a key gets ``key * 1024``, each next one the last id + 1, which is ``key * 1024 + n``
    while a key has at most 1024 trades."""

    __slots__ = ("_keys", "_last")

    def __init__(self) -> None:
        self._last: int | None = None
        self._keys: dict[str, int] = {}  # the last key of each kind ("seq" or "time")

    def assign(self, row: TradeRow) -> int | None:
        """The row's trade id; None for a row older than one already numbered (its key went backwards)."""
        kind, key = row.key
        if key > MAX_TRADE_KEY:
            raise ProtocolError(f"trade key {kind}={key} is too large for a trade id below 2**53")
        if key < self._keys.get(kind, key):
            return None
        trade_id = key * TRADE_SLOTS if self._last is None else max(key * TRADE_SLOTS, self._last + 1)
        self._keys[kind] = key
        self._last = trade_id
        return trade_id


# -- order book -------------------------------------------------------------------------------------------------
def book_levels(value: object, what: str) -> list[Level]:
    """The ``[price, size]`` pairs of one side, each checked: price positive, size not negative (``"0"``, in a
    delta, removes the level)."""
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be a list of [price, size] pairs, got {type(value).__name__}")
    levels = []
    for index, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ProtocolError(f"{what}[{index}] must be a [price, size] pair, got {pair!r:.40}")
        price = _decimal_text(pair[0], f"{what}[{index}] price")
        size = _decimal_text(pair[1], f"{what}[{index}] size")
        if Decimal(price) <= 0 or Decimal(size) < 0:
            raise ProtocolError(f"{what}[{index}] must have a positive price and a size of at least 0, "
                                f"got {pair!r:.60}")
        levels.append((price, size))
    return levels


def best_bid(levels: Iterable[Level]) -> Level | None:
    """The highest-priced level of a bid side with a size, or None."""
    return max((level for level in levels if Decimal(level[1]) > 0), key=lambda level: Decimal(level[0]),
               default=None)


def best_ask(levels: Iterable[Level]) -> Level | None:
    """The lowest-priced level of an ask side with a size, or None."""
    return min((level for level in levels if Decimal(level[1]) > 0), key=lambda level: Decimal(level[0]),
               default=None)


# -- REST -------------------------------------------------------------------------------------------------------
def rest_error(body: Any) -> tuple[int | None, str]:
    """The ``(retCode, retMsg)`` of a v5 REST body such as ``{"retCode":10001,"retMsg":"params error"}``."""
    if isinstance(body, Mapping):
        code = body.get("retCode")
        return (code if isinstance(code, int) and not isinstance(code, bool) else None,
                str(body.get("retMsg", ""))[:300])
    return None, ""


def _result(body: Any, what: str) -> Mapping[str, Any]:
    """The ``result`` of a successful v5 answer; ProtocolError for an error answer or another shape."""
    mapping(body, f"{what} answer")
    code, message = rest_error(body)
    if code != 0:
        raise ProtocolError(f"{what} answer is an error: retCode {code}, retMsg {message!r}")
    result = mapping(body.get("result"), f"{what} 'result'")
    if "category" in result and result["category"] != "linear":
        raise ProtocolError(f"{what} answer is of category {result['category']!r:.40}, not 'linear'")
    return result


def _rows(result: Mapping[str, Any], what: str) -> Sequence[Any]:
    rows = result.get("list")
    if not isinstance(rows, list):
        raise ProtocolError(f"{what} answer has no 'list'")
    return rows


def ticker_from_rest(body: Any) -> Ticker:
    """The Ticker of ``GET /v5/market/tickers?category=linear&symbol=``: the one row of ``list``; its instant is
    the answer's ``time``."""
    rows = _rows(_result(body, "tickers"), "tickers")
    if len(rows) != 1:
        raise ProtocolError(f"tickers answer must list one symbol, got {len(rows)}")
    row = mapping(rows[0], "tickers row")
    return ticker_from_fields(_symbol(row, "symbol"), ticker_fields(row), millis(body, "time"))


def trades_from_rest(body: Any, symbol: str) -> list[Trade]:
    """The Trades of ``GET /v5/market/recent-trade?category=linear&symbol=``, oldest first.

    Rows are ``{execId, symbol, price, size, side, time, isBlockTrade, isRPITrade?, seq?}`` with ``time`` and
    ``seq`` as strings of digits. Ids are derived as on the stream (``seq * 1024 + n``, else ``time * 1024 + n``),
    n counted in trade order within the answer; the documentation does not say the order of ``list``, so rows
    are put in ascending (key, time) order, newest-first answers reversed first. A row has no event time: its
    trade time stands for it. ProtocolError names the first bad row.
    """
    wanted = symbol.upper()
    rows = []
    for index, raw in enumerate(_rows(_result(body, "recent-trade"), "recent-trade")):
        try:
            entry = mapping(raw, "recent-trade row")
            flag(entry, "isBlockTrade")
            if "isRPITrade" in entry:
                flag(entry, "isRPITrade")
            parsed = TradeRow(
                symbol=_symbol(entry, "symbol"),
                public_id=_public_id(entry, "execId"),
                price=_decimal(entry, "price"),
                quantity=_decimal(entry, "size"),
                buyer_is_maker=_side(entry, "side"),
                trade_time=_integer_text(entry, "time", MAX_EPOCH_MS),
                seq=_integer_text(entry, "seq", MAX_TRADE_KEY) if "seq" in entry else None,
            )
        except ProtocolError as exc:
            raise ProtocolError(f"recent-trade row {index}: {exc}") from None
        if parsed.symbol != wanted:
            raise ProtocolError(f"recent-trade row {index} is of {parsed.symbol}, not {wanted}")
        rows.append(parsed)
    if len(rows) > 1 and (rows[0].key[1], rows[0].trade_time) > (rows[-1].key[1], rows[-1].trade_time):
        rows.reverse()
    rows.sort(key=lambda row: (row.key[0] == "seq", row.key[1], row.trade_time))
    ids = TradeIds()
    trades = []
    for row in rows:
        trade_id = ids.assign(row)
        if trade_id is not None:  # always: the rows are in order
            trades.append(trade_of(row, trade_id, row.trade_time))
    return trades


def book_ticker_from_rest(body: Any) -> BookTicker:
    """The BookTicker of ``GET /v5/market/orderbook?category=linear&symbol=`` (result ``{s, b, a, ts, u, seq,
    cts}``): the best bid and ask; event time ``ts``, transaction time ``cts`` (else ``ts``).

    Its ``u`` counts the 1000-level book, not the level-1 stream's, so it is not comparable with the stream's
    update ids: the update id is None and the transaction time orders it (``BookTicker.newer_than``).
    """
    result = _result(body, "orderbook")
    symbol = _symbol(result, "s")
    identifier(result, "u")
    if "seq" in result:
        identifier(result, "seq")
    bid = best_bid(book_levels(result.get("b"), "field 'b'"))
    ask = best_ask(book_levels(result.get("a"), "field 'a'"))
    if bid is None or ask is None:
        raise ProtocolError(f"orderbook answer of {symbol} has no {'bid' if bid is None else 'ask'}")
    event_time = millis(result, "ts")
    return BookTicker(
        symbol=symbol,
        bid=bid[0],
        bid_qty=bid[1],
        ask=ask[0],
        ask_qty=ask[1],
        update_id=None,
        event_time=event_time,
        transaction_time=millis(result, "cts") if "cts" in result else event_time,
        exchange=BYBIT,
    )


def tradable_usdt_perpetuals(instruments_body: Any) -> frozenset[str]:
    """Symbols of one page of ``GET /v5/market/instruments-info?category=linear`` that are ``LinearPerpetual``,
    quoted in ``USDT`` and ``Trading``: futures (``LinearFutures``), USDC perpetuals and pre-market
    (``PreLaunch``), ``Delivering`` or ``Closed`` contracts are left out. ``next_page_cursor`` gives the next page.
    """
    tradable = set()
    for entry in _rows(_result(instruments_body, "instruments-info"), "instruments-info"):
        if (
            isinstance(entry, Mapping)
            and entry.get("contractType") == "LinearPerpetual"
            and entry.get("quoteCoin") == "USDT"
            and entry.get("status") == "Trading"
            and isinstance(entry.get("symbol"), str)
            and SYMBOL_PATTERN.fullmatch(entry["symbol"]) is not None
        ):
            tradable.add(entry["symbol"])
    return frozenset(tradable)


def next_page_cursor(instruments_body: Any) -> str | None:
    """The ``nextPageCursor`` of an instruments-info page, or None on the last page (absent or empty)."""
    cursor = _result(instruments_body, "instruments-info").get("nextPageCursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ProtocolError(f"field 'nextPageCursor' must be a string, got {cursor!r:.40}")
    return cursor or None
