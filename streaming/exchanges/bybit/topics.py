"""Bybit's topic of each stream kind, its one route, and the per-connection topic limits. Pure.

Topics from https://bybit-exchange.github.io/docs/v5/websocket/public/ticker (``tickers.{symbol}``),
.../public/trade (``publicTrade.{symbol}``) and .../public/orderbook (``orderbook.{depth}.{symbol}``, depth 1
here); the route and the limits from https://bybit-exchange.github.io/docs/v5/ws/connect. Symbols stay upper
case, as Bybit names them (``BTCUSDT``).
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from streaming.core.channels import Channel, Kind
from streaming.core.symbols import MAX_SYMBOL_LENGTH, SYMBOL_PATTERN

__all__ = [
    "ARGS_CHARACTER_LIMIT", "BYBIT", "LINEAR", "MAX_BATCH", "MAX_STREAMS_PER_CONNECTION", "MAX_TOPIC_LENGTH",
    "PREFIXES", "ROUTES", "channel_of_stream", "route_of", "stream_of",
]

BYBIT = "bybit"
LINEAR = "/v5/public/linear"  # "Connect": USDT, USDC perpetual & USDT Futures, wss://stream.bybit.com/v5/public/linear
ROUTES = (LINEAR,)

PREFIXES: Mapping[Kind, str] = MappingProxyType({
    Kind.TICKER: "tickers.",
    Kind.TRADE: "publicTrade.",
    Kind.BOOK: "orderbook.1.",  # level 1: the best bid and ask, pushed every 10 ms
})
_BY_PREFIX = MappingProxyType({prefix: kind for kind, prefix in PREFIXES.items()})

# "Connect", Public channel - Args limits: one public connection's "args" may not exceed 21,000 characters
# (Futures have no limit on args per request; Spot has 10).
ARGS_CHARACTER_LIMIT = 21_000
MAX_TOPIC_LENGTH = max(map(len, PREFIXES.values())) + MAX_SYMBOL_LENGTH  # orderbook.1. + 32 = 44
# Each topic costs its characters, two quotes and a comma in the JSON array: 21,000 // 47 = 446. Less than half
# of that, so however Bybit counts (per request, or every topic the connection ever named) there is room.
MAX_STREAMS_PER_CONNECTION = min(200, ARGS_CHARACTER_LIMIT // (MAX_TOPIC_LENGTH + 3))
MAX_BATCH = 10  # topics per subscribe request: none documented for linear; Spot's documented 10


def stream_of(channel: Channel) -> str:
    """The topic of a Bybit channel: ``book:BTCUSDT`` -> ``orderbook.1.BTCUSDT``; ValueError for another
    exchange's channel."""
    if channel.exchange != BYBIT:
        raise ValueError(f"{channel} is not a Bybit channel")
    return PREFIXES[channel.kind] + channel.symbol


def route_of(channel: Channel) -> str:
    """The route whose connections carry a Bybit channel: every kind is on ``/v5/public/linear``."""
    if channel.exchange != BYBIT:
        raise ValueError(f"{channel} is not a Bybit channel")
    return LINEAR


def channel_of_stream(topic: str) -> Channel | None:
    """The channel a topic carries, or None for a topic that is no channel (``orderbook.50.BTCUSDT``,
    ``kline.1.BTCUSDT``, a lower-case symbol...)."""
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC_LENGTH:
        return None
    prefix, dot, symbol = topic.rpartition(".")
    kind = _BY_PREFIX.get(prefix + dot)
    if kind is None or SYMBOL_PATTERN.fullmatch(symbol) is None:
        return None
    return Channel(BYBIT, kind, symbol)
