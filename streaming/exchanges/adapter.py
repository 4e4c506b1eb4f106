"""The adapter boundary: what the service needs to know of an exchange, and nothing more. Pure.

An exchange package (``streaming/exchanges/<name>/``) builds one ``Exchange``. The upstream connections, the
pools, the hub and the routes use only this: stream names, routes and URLs, the control frames, the heartbeat,
the limits per connection, and a ``WireSession`` per connection that turns frames into ``messages``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from streaming.core.channels import Channel, Kind
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.core.pacing import RequestGate
from streaming.exchanges.messages import Message

__all__ = ["TIME", "Exchange", "MarketRest", "ReplayField", "WireSession"]


class WireSession(Protocol):
    """One connection's view of the wire protocol; a new one for every connection (Bybit keeps the merged
    state of its snapshot-then-delta topics here)."""

    def decode(self, data: str | bytes) -> Message:
        """Classify one text frame. Never raises."""
        ...

    def parse(self, frame: object) -> Message:
        """Classify one frame already decoded from JSON (what ``decode`` does after decoding). Never raises."""
        ...


TIME = "time"  # the family of a ReplayField that is a time


@dataclass(frozen=True, slots=True)
class ReplayField:
    """A number in a decoded frame that a replay moves on each loop (``streaming.exchanges.recording``): a time
    (family TIME; ``ordered`` when the ordering gates or the freshness checks read it, so a loop's span must
    cover it), or an id of a family the gates compare, per symbol."""

    holder: dict[str, Any]  # the object of the frame that holds it
    name: str
    family: str = TIME
    symbol: str = ""  # an id's symbol, upper case
    ordered: bool = True


@dataclass(frozen=True, slots=True)
class Exchange:
    """One exchange's market-data protocol, as the rest of the service sees it."""

    name: str  # as clients name it: ``subscribe {exchange: "binance"}``
    title: str  # for people: "Binance USD-M futures"
    routes: tuple[str, ...]  # URL paths, each served by its own connections; the first is the one /ready waits for
    kinds: frozenset[Kind]  # the stream kinds it carries
    stream_of: Callable[[Channel], str]  # a channel's upstream stream (topic) name
    route_of: Callable[[Channel], str]
    channel_of_stream: Callable[[str], Channel | None]  # None for a stream that is no channel
    stream_url: Callable[[str, str, Iterable[str]], str]  # (host, route, streams named in the URL) -> URL
    url_stream_limit: int  # how many streams a connection names in its URL (the rest by subscribe requests)
    control_request: Callable[[str, int, tuple[str, ...]], str]  # ("SUBSCRIBE" | "UNSUBSCRIBE", id, streams)
    session: Callable[[], WireSession]
    replay_fields: Callable[[object], Iterable[ReplayField]]  # the times and ids of a decoded frame
    # the heartbeat: None, the client pings with WebSocket ping frames (Binance); else the text frame of an
    # application ping for a request id, answered by a Pong message (Bybit's {"op": "ping"})
    ping_frame: Callable[[int], str] | None
    max_streams_per_connection: int  # the exchange's documented limit (the settings may ask for less)
    max_batch: int  # streams per subscribe request
    trade_ids_consecutive: bool  # trade_id counts every trade: a gap in it is a missed trade (backfilled)


class MarketRest(Protocol):
    """An exchange's REST client, as the look-ups, the catalog and /health use it (``exchanges/http.py``)."""

    title: str
    gate: RequestGate
    last_ok: bool | None

    def available(self) -> bool: ...

    def tradable_symbols(self) -> frozenset[str]:
        """The symbols clients may subscribe to (trading USDT perpetuals)."""
        ...

    def ticker(self, symbol: str) -> Ticker: ...

    def book_ticker(self, symbol: str) -> BookTicker: ...

    def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        """The last ``limit`` trades, oldest first."""
        ...

    def close(self) -> None: ...
