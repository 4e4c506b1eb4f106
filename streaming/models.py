"""Ticker: one normalised 24-hour ticker, and its wire form (the ``price_update`` payload). Pure.

Prices stay Binance's exact decimal strings inside; they become JSON numbers only in ``to_wire``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["Ticker", "iso_timestamp"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
