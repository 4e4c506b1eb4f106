"""Binance's upstream stream of each kind: its name, its route, its event type and its parser. Pure.

Since 2026-04-23 Binance serves market streams by route ("Important WebSocket Change Notice"): tickers and
aggregated trades on /market, book tickers on /public, and one connection carries one route's streams only.
Symbols are lower-cased only here, for stream names.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.models import Model
from streaming.exchanges.binance.payloads import book_ticker_from_payload, ticker_from_payload, trade_from_payload

__all__ = [
    "BY_EVENT", "MARKET", "PUBLIC", "ROUTES", "STREAMS", "StreamSpec", "channel_of_stream", "route_of", "stream_of",
]

MARKET = "/market"
PUBLIC = "/public"
ROUTES = (MARKET, PUBLIC)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """How Binance carries one kind: ``<symbol><suffix>`` on ``route``, payloads of event type ``event``."""

    kind: Kind
    suffix: str
    route: str
    event: str
    parse: Callable[[Mapping[str, Any]], Model]


STREAMS: Mapping[Kind, StreamSpec] = MappingProxyType({
    Kind.TICKER: StreamSpec(Kind.TICKER, "@ticker", MARKET, "24hrTicker", ticker_from_payload),
    Kind.TRADE: StreamSpec(Kind.TRADE, "@aggTrade", MARKET, "aggTrade", trade_from_payload),
    Kind.BOOK: StreamSpec(Kind.BOOK, "@bookTicker", PUBLIC, "bookTicker", book_ticker_from_payload),
})
_BY_SUFFIX = MappingProxyType({spec.suffix: spec for spec in STREAMS.values()})
BY_EVENT: Mapping[object, StreamSpec] = MappingProxyType({spec.event: spec for spec in STREAMS.values()})
_STREAM = re.compile(r"([a-z0-9_]+)(@[A-Za-z]+)")


def stream_of(channel: Channel) -> str:
    """The upstream stream of a Binance channel: ``trade:BTCUSDT`` -> ``btcusdt@aggTrade``."""
    if channel.exchange != BINANCE:
        raise ValueError(f"{channel} is not a Binance channel")
    return channel.symbol.lower() + STREAMS[channel.kind].suffix


def route_of(channel: Channel) -> str:
    """The route whose connections carry a Binance channel's stream (``/market`` or ``/public``)."""
    return STREAMS[channel.kind].route


def channel_of_stream(stream: str) -> Channel | None:
    """The channel a stream name carries, or None for a stream that is no channel (``!ticker@arr``, depth...)."""
    match = _STREAM.fullmatch(stream)
    spec = _BY_SUFFIX.get(match.group(2)) if match else None
    if match is None or spec is None:
        return None
    return Channel(BINANCE, spec.kind, match.group(1).upper())
