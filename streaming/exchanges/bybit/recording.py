"""What a replay moves in Bybit's frames (``streaming.exchanges.recording``). Pure.

Times: the message's ``ts`` (a ticker's and a trade message's event time) and ``cts`` (a book's transaction
time), and each trade's ``T``. Ids, per symbol: a trade's ``seq`` (its trade id is derived from it, see
``payloads``), a book's ``u`` and ``seq``. Times Bybit writes as strings (a ticker's ``nextFundingTime``) are
not read by the service and stay as recorded.
"""
from __future__ import annotations

from collections.abc import Iterator

from streaming.core.channels import Kind
from streaming.exchanges.adapter import ReplayField
from streaming.exchanges.bybit.topics import channel_of_stream

__all__ = ["replay_fields"]

TRADE_SEQUENCE, BOOK_UPDATES, BOOK_SEQUENCE = "trade seq", "book u", "book seq"


def replay_fields(frame: object) -> Iterator[ReplayField]:
    if not isinstance(frame, dict) or not isinstance(frame.get("topic"), str):
        return
    channel = channel_of_stream(frame["topic"])
    if channel is None:
        return
    yield ReplayField(frame, "ts")
    data = frame.get("data")
    if channel.kind is Kind.TRADE and isinstance(data, list):
        for row in data:
            if isinstance(row, dict):
                yield ReplayField(row, "T")
                yield ReplayField(row, "seq", TRADE_SEQUENCE, channel.symbol)
    elif channel.kind is Kind.BOOK:
        yield ReplayField(frame, "cts")
        if isinstance(data, dict):
            yield ReplayField(data, "u", BOOK_UPDATES, channel.symbol)
            yield ReplayField(data, "seq", BOOK_SEQUENCE, channel.symbol)
