"""What one Bybit connection remembers between frames: the merged ticker of each symbol, its level-1 book, and
the trade-id sequence of its trades. Pure: data in, messages out; one of each per connection.

Tickers (https://bybit-exchange.github.io/docs/v5/websocket/public/ticker): a snapshot, then deltas in which
a missing field is unchanged. A delta before the symbol's first snapshot is ``delta_before_snapshot``; a new
snapshot replaces the state. A Ticker goes out only when the state has every field it needs, for a snapshot or
for a delta that changed one of them (markPrice or openInterest alone do not), and only with an event time
later than the last one this connection sent for the symbol.

Books (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook): level 1 pushes only snapshots,
again with the same ``u`` after 3 s without change (skipped here), but deltas are applied too (size "0"
removes a level; a level-1 book holds one level a side, the best). ``u`` = 1 on a snapshot means Bybit's book
service restarted. The service drops a book ticker whose update id is not above the last one, so the update id
sent is ``base + u``: ``base`` starts at 0 (the update id is ``u``) and, when a snapshot's ``u`` is below the
last one (the documented ``u`` = 1, or any other restart), jumps so that the snapshot's id is the last id + 1.
Only this connection knows of that jump: another connection opened after the restart sends plain ``u`` again,
below the ids the service holds, until ``u`` passes them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Model
from streaming.exchanges.bybit.payloads import (
    TICKER_FIELDS,
    Level,
    TradeIds,
    best_ask,
    best_bid,
    book_levels,
    identifier,
    ticker_fields,
    ticker_from_fields,
    trade_of,
    trade_row,
)
from streaming.exchanges.bybit.topics import BYBIT
from streaming.exchanges.messages import Message, StreamBatch, Unrecognised

__all__ = ["BookMerge", "TickerMerge", "TradeSequence"]

SNAPSHOT = "snapshot"
DELTA = "delta"


def _skipped(topic: str) -> StreamBatch:
    """A data frame that changes nothing clients see (it still shows the connection is alive)."""
    return StreamBatch(topic, (), 1)


def _before_snapshot(topic: str) -> Unrecognised:
    return Unrecognised("delta_before_snapshot", topic[:80])


def _same_symbol(data: Mapping[str, Any], key: str, symbol: str) -> None:
    if key in data and data[key] != symbol:
        raise ProtocolError(f"field {key!r} is {data[key]!r:.40}, not the topic's {symbol}")


@dataclass(slots=True)
class _TickerState:
    fields: dict[str, str]
    sent_at: int | None = None  # event time of the last Ticker sent


class TickerMerge:
    """The ``tickers.{symbol}`` state of one connection."""

    def __init__(self) -> None:
        self._states: dict[str, _TickerState] = {}

    def apply(self, topic: str, symbol: str, kind: str, data: object, event_time: int) -> Message:
        """Merge one snapshot or delta; ProtocolError (nothing merged) for a malformed one."""
        if not isinstance(data, Mapping):
            raise ProtocolError(f"ticker 'data' must be an object, got {type(data).__name__}")
        if kind == SNAPSHOT and "symbol" not in data:
            raise ProtocolError("ticker snapshot has no 'symbol'")
        _same_symbol(data, "symbol", symbol)
        fields = ticker_fields(data)
        state = self._states.get(symbol)
        if kind == SNAPSHOT:
            changed = True
            if state is None:
                state = self._states[symbol] = _TickerState(fields)
            else:
                state.fields = fields
        elif state is None:
            return _before_snapshot(topic)
        else:
            changed = any(state.fields.get(key) != value for key, value in fields.items())
            state.fields.update(fields)
        if not changed or len(state.fields) < len(TICKER_FIELDS):
            return _skipped(topic)
        if state.sent_at is not None and event_time <= state.sent_at:
            return _skipped(topic)
        ticker = ticker_from_fields(symbol, state.fields, event_time)
        state.sent_at = event_time
        return StreamBatch(topic, (ticker,))


@dataclass(slots=True)
class _BookState:
    u: int  # Bybit's update id of the state
    bid: Level | None
    ask: Level | None
    base: int = 0  # what is added to u for the update id sent (see the module docstring)


class BookMerge:
    """The ``orderbook.1.{symbol}`` state of one connection."""

    def __init__(self) -> None:
        self._states: dict[str, _BookState] = {}

    def apply(self, topic: str, symbol: str, kind: str, data: object, event_time: int,
              transaction_time: int) -> Message:
        """Apply one snapshot or delta; ProtocolError (nothing applied) for a malformed one."""
        if not isinstance(data, Mapping):
            raise ProtocolError(f"orderbook 'data' must be an object, got {type(data).__name__}")
        if "s" not in data:
            raise ProtocolError("orderbook 'data' has no 's'")
        _same_symbol(data, "s", symbol)
        u = identifier(data, "u")
        seq = identifier(data, "seq") if "seq" in data else None
        bids = book_levels(data.get("b", []) if kind == DELTA else data.get("b"), "field 'b'")
        asks = book_levels(data.get("a", []) if kind == DELTA else data.get("a"), "field 'a'")
        state = self._states.get(symbol)
        if kind == SNAPSHOT:
            if state is None:
                state = self._states[symbol] = _BookState(u, None, None)
            elif u == state.u:
                state.bid, state.ask = best_bid(bids), best_ask(asks)
                return _skipped(topic)  # the level-1 re-send after 3 s without change
            elif u < state.u:
                state.base += state.u + 1 - u  # Bybit's book service restarted: this snapshot is last id + 1
            state.bid, state.ask = best_bid(bids), best_ask(asks)
        elif state is None:
            return _before_snapshot(topic)
        elif u <= state.u:
            return _skipped(topic)  # not newer than the state
        else:
            state.bid = best_bid(_changed(state.bid, bids))
            state.ask = best_ask(_changed(state.ask, asks))
        state.u = u
        if state.bid is None or state.ask is None:
            return _skipped(topic)
        book = BookTicker(
            symbol=symbol,
            bid=state.bid[0],
            bid_qty=state.bid[1],
            ask=state.ask[0],
            ask_qty=state.ask[1],
            # ``seq`` (the matching engine's cross sequence) orders books across connections and across a
            # restart of the book service, which sets ``u`` back to 1; without it, ``u`` past the restarts seen
            update_id=seq if seq is not None else state.base + u,
            event_time=event_time,
            transaction_time=transaction_time,
            exchange=BYBIT,
        )
        return StreamBatch(topic, (book,))


def _changed(held: Level | None, changes: list[Level]) -> list[Level]:
    """A side's levels after a delta: the held level unless a change names its price, then the changes (a
    size of "0" is dropped by best_bid / best_ask)."""
    prices = {Decimal(price) for price, _ in changes}
    kept = [held] if held is not None and Decimal(held[0]) not in prices else []
    return kept + changes


@dataclass(slots=True)
class TradeSequence:
    """The ``publicTrade.{symbol}`` trade ids of one connection (see ``payloads`` for how they are derived)."""

    _ids: dict[str, TradeIds] = field(default_factory=dict)

    def apply(self, topic: str, symbol: str, data: object, event_time: int) -> Message:
        """The trades of one message; malformed rows, rows of another symbol and rows out of order are
        skipped and counted. ProtocolError when ``data`` is not a list."""
        if not isinstance(data, list):
            raise ProtocolError(f"publicTrade 'data' must be a list, got {type(data).__name__}")
        ids = self._ids.get(symbol)
        if ids is None:
            ids = self._ids[symbol] = TradeIds()
        trades: list[Model] = []
        skipped = 0
        for raw in data:
            try:
                row = trade_row(raw)
                if row.symbol != symbol:
                    raise ProtocolError(f"trade of {row.symbol} on {topic}")
                trade_id = ids.assign(row)
            except ProtocolError:
                skipped += 1
                continue
            if trade_id is None:
                skipped += 1
                continue
            trades.append(trade_of(row, trade_id, event_time))
        return StreamBatch(topic, tuple(trades), skipped)
