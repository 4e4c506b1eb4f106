"""What an exchange adapter makes of one upstream frame, whatever the exchange. Pure.

Every adapter classifies each frame as one of these; the upstream connection acts on them without knowing the
exchange.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streaming.core.models import Model

__all__ = ["ErrorReply", "Message", "Pong", "Reply", "StreamBatch", "Unrecognised"]


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """The updates of one data frame: one ticker, trade or book ticker, or several of one stream."""

    stream: str
    updates: tuple[Model, ...]
    skipped: int = 0  # rows ignored: other symbol types (COIN-M), unknown events or malformed rows


@dataclass(frozen=True, slots=True)
class Reply:
    """A control request was accepted (Binance ``{"result": null, "id": N}``, Bybit ``{"success": true}``)."""

    id: int | None
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A control request was refused (or, without id, the frame was invalid).

    ``streams`` names the refused streams when the exchange says which, and ``subscribed`` those it says are
    subscribed already (Bybit refuses a whole request for either, naming them); the rest of the request was not
    subscribed. ``streams`` None: the exchange did not say which stream was wrong (Binance)."""

    id: int | None
    code: int | None
    message: str
    streams: tuple[str, ...] | None = None
    subscribed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to an application-level ping the client sent as a text frame (Bybit's ``{"op": "ping"}``)."""


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """A frame that is not garbage-free JSON of a known kind; ``kind`` is a short, bounded category."""

    kind: str
    detail: str


Message = StreamBatch | Reply | ErrorReply | Pong | Unrecognised
