"""The normalised market data of each stream kind, and their wire forms. Pure.

Ticker (``price_update``), Trade (``trade``, one aggregated trade) and BookTicker (``book_ticker``, the best bid
and ask). Prices and quantities stay the exchange's exact decimal strings inside; they become JSON numbers only
in ``to_wire``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from streaming.core.channels import BINANCE, Channel, Kind, market_of

__all__ = ["BookTicker", "Model", "Ticker", "Trade", "iso_timestamp"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_timestamp(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds and 'Z' for an epoch-milliseconds instant (exact, no float rounding)."""
    instant = _EPOCH + timedelta(milliseconds=epoch_ms)
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


class _Update:
    """What every model has: the channel it belongs to, from its kind, exchange and symbol."""

    __slots__ = ()
    symbol: str
    kind: ClassVar[Kind]
    exchange: str

    @property
    def channel(self) -> Channel:
        return Channel(self.exchange, self.kind, self.symbol)

    @property
    def market(self) -> str:
        """The symbol on its exchange as one string (``channels.market_of``): what the stores key by."""
        return market_of(self.exchange, self.symbol)


@dataclass(frozen=True, slots=True)
class Ticker(_Update):
    """A 24-hour rolling ticker of one perpetual. Decimal fields are the exchange's strings, verbatim."""

    symbol: str
    price: str
    volume: str
    high: str
    low: str
    change: str
    change_percent: str
    open: str
    quote_volume: str
    event_time: int
    exchange: str = BINANCE
    kind: ClassVar[Kind] = Kind.TICKER

    def newer_than(self, other: Ticker) -> bool:
        """Whether this tick supersedes ``other`` of the same symbol (a later event)."""
        return self.event_time > other.event_time

    @property
    def order(self) -> int:
        """What ``newer_than`` compares, as one number: the event time."""
        return self.event_time

    def to_wire(self) -> dict[str, Any]:
        """The documented ``price_update`` payload: decimals as JSON numbers, times as ms and ISO 8601."""
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "price": float(self.price),
            "volume": float(self.volume),
            "high": float(self.high),
            "low": float(self.low),
            "change": float(self.change),
            "changePercent": float(self.change_percent),
            "open": float(self.open),
            "quoteVolume": float(self.quote_volume),
            "timestamp": iso_timestamp(self.event_time),
            "eventTime": self.event_time,
        }


@dataclass(frozen=True, slots=True)
class Trade(_Update):
    """One trade: on Binance an aggregated trade (``aggTrade``: the fills of 100 ms at one price and one taker
    side), on Bybit one public trade."""

    symbol: str
    trade_id: int  # what orders the symbol's trades: Binance's aggregate id ``a``; for Bybit see its payloads
    price: str
    quantity: str
    buyer_is_maker: bool  # ``m``: the buyer was the maker, so the taker sold
    first_trade_id: int | None  # Binance's first and last fill ids; None where the exchange has none (Bybit)
    last_trade_id: int | None
    trade_time: int
    event_time: int
    exchange: str = BINANCE
    public_id: str | None = None  # the exchange's own id when it is not ``trade_id`` (Bybit's ``i``, a UUID)
    kind: ClassVar[Kind] = Kind.TRADE

    def newer_than(self, other: Trade) -> bool:
        """Whether this trade comes after ``other`` of the same symbol (``trade_id`` only grows)."""
        return self.trade_id > other.trade_id

    @property
    def order(self) -> int:
        """What ``newer_than`` compares, as one number: the aggregate trade id."""
        return self.trade_id

    @property
    def side(self) -> str:
        """The taker's side: ``sell`` when the buyer was the maker, else ``buy``."""
        return "sell" if self.buyer_is_maker else "buy"

    def to_wire(self) -> dict[str, Any]:
        """The documented ``trade`` payload; ``timestamp`` is the trade time."""
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "id": self.trade_id if self.public_id is None else self.public_id,
            "price": float(self.price),
            "quantity": float(self.quantity),
            "side": self.side,
            "firstTradeId": self.first_trade_id,
            "lastTradeId": self.last_trade_id,
            "tradeTime": self.trade_time,
            "eventTime": self.event_time,
            "timestamp": iso_timestamp(self.trade_time),
        }


@dataclass(frozen=True, slots=True)
class BookTicker(_Update):
    """The best bid and ask of one symbol (Binance ``bookTicker``)."""

    symbol: str
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    update_id: int | None  # ``u``; None when the source does not say (Binance REST documents no update id)
    event_time: int
    transaction_time: int
    exchange: str = BINANCE
    kind: ClassVar[Kind] = Kind.BOOK

    def newer_than(self, other: BookTicker) -> bool:
        """Whether this best bid/ask supersedes ``other`` of the same symbol: a higher update id when both have
        one (the stream's), else a later transaction time (REST answers carry no update id)."""
        if self.update_id is not None and other.update_id is not None:
            return self.update_id > other.update_id
        return self.transaction_time > other.transaction_time

    @property
    def order(self) -> int:
        """What ``newer_than`` compares for the stream's updates, as one number: the update id (the
        transaction time for a REST answer, which has none)."""
        return self.update_id if self.update_id is not None else self.transaction_time

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> BookTicker:
        """The book ticker of a ``book_ticker`` payload (a stored history entry); raises KeyError, TypeError or
        ValueError for anything else. Decimals come back as the shortest text of their JSON number, which gives
        the same payload again."""
        update_id = wire["updateId"]
        return cls(str(wire["symbol"]), repr(float(wire["bid"])), repr(float(wire["bidQty"])),
                   repr(float(wire["ask"])), repr(float(wire["askQty"])),
                   None if update_id is None else int(update_id), int(wire["eventTime"]),
                   int(wire["transactionTime"]), str(wire.get("exchange", BINANCE)))

    def to_wire(self) -> dict[str, Any]:
        """The documented ``book_ticker`` payload; ``timestamp`` is the event time."""
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "bid": float(self.bid),
            "bidQty": float(self.bid_qty),
            "ask": float(self.ask),
            "askQty": float(self.ask_qty),
            "updateId": self.update_id,
            "eventTime": self.event_time,
            "transactionTime": self.transaction_time,
            "timestamp": iso_timestamp(self.event_time),
        }


Model = Ticker | Trade | BookTicker
