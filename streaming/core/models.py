"""The normalised market data of each stream kind, and their wire forms. Pure.

Ticker (``price_update``), Trade (``trade``, one aggregated trade) and BookTicker (``book_ticker``, the best bid
and ask). Prices and quantities stay the exchange's exact decimal strings inside; they become JSON numbers only
in ``to_wire``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streaming.core.channels import BINANCE

__all__ = ["BookTicker", "Ticker", "Trade", "iso_timestamp"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_timestamp(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds and 'Z' for an epoch-milliseconds instant (exact, no float rounding)."""
    instant = _EPOCH + timedelta(milliseconds=epoch_ms)
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Ticker:
    """A 24-hour rolling ticker of one USD-M symbol. Decimal fields are Binance's strings, verbatim."""

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

    def to_wire(self) -> dict[str, Any]:
        """The documented ``price_update`` payload: decimals as JSON numbers, times as ms and ISO 8601."""
        return {
            "symbol": self.symbol,
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
class Trade:
    """One aggregated trade (Binance ``aggTrade``: the fills of 100 ms at one price and one taker side)."""

    symbol: str
    trade_id: int  # the aggregate trade id ``a``
    price: str
    quantity: str
    buyer_is_maker: bool  # ``m``: the buyer was the maker, so the taker sold
    first_trade_id: int
    last_trade_id: int
    trade_time: int
    event_time: int
    exchange: str = BINANCE

    @property
    def side(self) -> str:
        """The taker's side: ``sell`` when the buyer was the maker, else ``buy``."""
        return "sell" if self.buyer_is_maker else "buy"

    def to_wire(self) -> dict[str, Any]:
        """The documented ``trade`` payload; ``timestamp`` is the trade time."""
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "id": self.trade_id,
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
class BookTicker:
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
