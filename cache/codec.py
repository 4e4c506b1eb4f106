"""Ticker <-> the JSON stored under ``price:<SYMBOL>``. Pure: decimals stay the exchange's exact strings."""
from __future__ import annotations

import json
from dataclasses import asdict, fields

from streaming.core.channels import BINANCE
from streaming.core.errors import ProtocolError
from streaming.core.models import Ticker

__all__ = ["KEY_PREFIX", "key_for", "encode", "decode"]

KEY_PREFIX = "price:"
_FIELDS = tuple(f.name for f in fields(Ticker))


def key_for(market: str) -> str:
    """Redis key of a market (``channels.market_of``): ``price:BTCUSDT``, ``price:bybit:BTCUSDT``."""
    return KEY_PREFIX + market


def encode(ticker: Ticker) -> str:
    return json.dumps(asdict(ticker), separators=(",", ":"))


def decode(raw: str | bytes) -> Ticker:
    """Parse a stored ticker; raises ProtocolError for anything that is not one (another writer, old format)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"cached ticker is not JSON: {exc}") from None
    if isinstance(data, dict) and "exchange" not in data:
        data["exchange"] = BINANCE  # written before tickers named their exchange
    if not isinstance(data, dict) or set(data) != set(_FIELDS):
        raise ProtocolError("cached ticker has unexpected fields")
    if not isinstance(data["event_time"], int) or not all(
        isinstance(data[name], str) for name in _FIELDS if name != "event_time"
    ):
        raise ProtocolError("cached ticker has fields of the wrong type")
    return Ticker(**data)
