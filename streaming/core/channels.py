"""Channels: what a client subscribes to, (exchange, kind, symbol), and what each kind is for clients. Pure.

A kind is declared once here (its wire event, whether a subscriber gets the latest update at once, and what
happens to a client that cannot keep up); each exchange declares, in its own package, the upstream stream that
carries the kind and its parser. Imports nothing but the standard library and the core's errors and symbol rules.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from streaming.core.errors import InvalidRequestError
from streaming.core.symbols import shown_item

__all__ = [
    "BINANCE", "DEFAULT_KINDS", "KINDS", "Channel", "Kind", "KindPolicy", "market_of", "parse_kinds", "split_market",
]

BINANCE = "binance"  # the default exchange: its keys and markets keep the names they had before there were others


class Kind(StrEnum):
    """A stream kind, as clients name it in ``subscribe {streams: [...]}``."""

    TICKER = "ticker"
    TRADE = "trade"
    BOOK = "book"


@dataclass(frozen=True, slots=True)
class KindPolicy:
    """What a kind is for clients."""

    kind: Kind
    event: str  # the Socket.IO event of its updates
    snapshot: bool  # a new subscriber gets the latest fresh update at once (state), or nothing (events)
    conflate: bool  # a slow client's backlog keeps the newest update per symbol; else the client is cut off
    coalesce: bool = False  # a room's updates go out together every TRADE_BATCH_WINDOW (still one event each)


KINDS: Mapping[Kind, KindPolicy] = MappingProxyType({
    Kind.TICKER: KindPolicy(Kind.TICKER, "price_update", snapshot=True, conflate=True),
    Kind.TRADE: KindPolicy(Kind.TRADE, "trade", snapshot=False, conflate=False, coalesce=True),
    Kind.BOOK: KindPolicy(Kind.BOOK, "book_ticker", snapshot=True, conflate=True),
})
_NAMES = frozenset(kind.value for kind in Kind)
DEFAULT_KINDS = (Kind.TICKER,)  # what `subscribe` without `streams` means: today's clients see no change


@dataclass(frozen=True, slots=True, order=True)
class Channel:
    """One stream of one symbol on one exchange: the unit of subscriptions, demand, rooms and metrics."""

    exchange: str
    kind: Kind
    symbol: str

    @property
    def key(self) -> str:
        """How clients name a channel: ``"<kind>:<SYMBOL>"`` on the default exchange (``trade:BTCUSDT``), else
        ``"<exchange>:<kind>:<SYMBOL>"`` (``bybit:trade:BTCUSDT``). Rooms, histories and positions use it."""
        if self.exchange == BINANCE:
            return f"{self.kind}:{self.symbol}"
        return f"{self.exchange}:{self.kind}:{self.symbol}"

    @property
    def market(self) -> str:
        """The channel's symbol on its exchange, as one string (``market_of``)."""
        return market_of(self.exchange, self.symbol)

    @property
    def room(self) -> str:
        """The Socket.IO room of the channel's subscribers (its key)."""
        return self.key

    @property
    def policy(self) -> KindPolicy:
        return KINDS[self.kind]


def market_of(exchange: str, symbol: str) -> str:
    """One exchange's symbol as one string, the key of the stores and the ticker cache: ``BTCUSDT`` on the
    default exchange, ``bybit:BTCUSDT`` elsewhere."""
    return symbol if exchange == BINANCE else f"{exchange}:{symbol}"


def split_market(market: str) -> tuple[str, str]:
    """``(exchange, symbol)`` of a ``market_of`` string."""
    exchange, _, symbol = market.rpartition(":")
    return exchange or BINANCE, symbol


def parse_kinds(value: object, *, default: tuple[Kind, ...] = DEFAULT_KINDS) -> tuple[Kind, ...]:
    """The kinds of a request's ``streams`` (absent: ``default``), in the client's order without repeats.

    Raises InvalidRequestError unless ``value`` is None or a non-empty list of kind names: a bad value refuses
    the whole request.
    """
    if value is None:
        return default
    names = ", ".join(f'"{kind}"' for kind in Kind)
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"'streams' must be a non-empty list drawn from {names}, e.g. [\"ticker\", "
                                  f"\"trade\"]; got {shown_item(value)!r}")
    kinds: list[Kind] = []
    for item in value:
        if not isinstance(item, str) or item not in _NAMES:
            raise InvalidRequestError(f"unknown stream {shown_item(item)!r} in 'streams'; use {names}")
        kind = Kind(item)
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)

