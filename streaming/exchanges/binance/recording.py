"""What a replay moves in Binance's frames (``streaming.exchanges.recording``): the times and the ids of each
combined-stream payload. Pure.

Times: the ones the ordering gate and the freshness checks read ("WebSocket Market Streams": E event time, T
trade or transaction time), and a ticker's 24-hour window (O open time, C close time) along with them; events
not listed have their E moved. Ids, by family, each family's span measured per symbol over all its fields:
aggTrade ``a``, trade ids ``f``/``l`` and a ticker's ``F``/``L``, bookTicker ``u``.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from streaming.core.channels import Kind
from streaming.exchanges.adapter import ReplayField
from streaming.exchanges.binance.streams import STREAMS

__all__ = ["replay_fields"]

_TICKER, _TRADE, _BOOK = (STREAMS[kind].event for kind in (Kind.TICKER, Kind.TRADE, Kind.BOOK))
ORDERED_TIMES: Mapping[str, tuple[str, ...]] = {_TICKER: ("E",), _TRADE: ("E", "T"), _BOOK: ("E", "T")}
OTHER_TIMES: Mapping[str, tuple[str, ...]] = {_TICKER: ("O", "C")}
AGGREGATE_IDS, TRADE_IDS, BOOK_IDS = "aggregate trade", "trade", "book update"
ID_FIELDS: Mapping[str, Mapping[str, str]] = {
    _TICKER: {"F": TRADE_IDS, "L": TRADE_IDS},
    _TRADE: {"a": AGGREGATE_IDS, "f": TRADE_IDS, "l": TRADE_IDS},
    _BOOK: {"u": BOOK_IDS},
}


def data_rows(frame: object) -> list[dict[str, Any]]:
    """The payloads of a combined-stream data frame (one, or the rows of an array stream); [] for any other."""
    if not isinstance(frame, dict) or "stream" not in frame:
        return []
    data = frame.get("data")
    rows = data if isinstance(data, list) else [data]
    return [row for row in rows if isinstance(row, dict)]


def replay_fields(frame: object) -> Iterator[ReplayField]:
    for row in data_rows(frame):
        event = row.get("e")
        key = event if isinstance(event, str) else ""
        for name in ORDERED_TIMES.get(key, ("E",)):
            yield ReplayField(row, name)
        for name in OTHER_TIMES.get(key, ()):
            yield ReplayField(row, name, ordered=False)
        symbol = row.get("s")
        if isinstance(symbol, str):
            for name, family in ID_FIELDS.get(key, {}).items():
                yield ReplayField(row, name, family, symbol.upper())
