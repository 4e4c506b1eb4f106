"""What a history read or a replay asks for: a stream of a symbol, a time range, a page. Pure: the parsing of
``GET /history`` query parameters and of the ``replay`` event's fields, with errors that say what to send.

Times are epoch milliseconds (``1764770000000``) or ISO 8601 (``2026-12-03T14:00:00Z``; without an offset,
UTC). ``from`` and ``to`` are inclusive and select by the updates' event time.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from streaming.core.channels import Kind
from streaming.core.errors import InvalidRequestError
from streaming.core.positions import MAX_OFFSET
from streaming.core.symbols import shown_item

__all__ = ["HistoryQuery", "DEFAULT_LIMIT", "MAX_LIMIT", "MAX_SPEED", "parse_history_query", "parse_instant",
           "parse_kind", "parse_speed", "parse_time_range"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_SPEED = 1000.0
_DIGITS = re.compile(r"^[0-9]{1,16}$")
_KIND_NAMES = ", ".join(kind.value for kind in Kind)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A page of one stream's history: entries above offset ``after``, event times from ``start`` to ``end``
    (epoch seconds, inclusive), at most ``limit``; ``epoch``: the epoch the client is paging through, if it says."""

    kind: Kind
    start: float
    end: float
    limit: int
    after: int
    epoch: str | None


def parse_instant(value: object, name: str) -> float:
    """Epoch seconds of a time given as epoch milliseconds (a whole number, or its digits) or ISO 8601."""
    if isinstance(value, bool):
        raise _bad_time(name, value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value > 10**16:
            raise _bad_time(name, value)
        return value / 1000.0
    if not isinstance(value, str):
        raise _bad_time(name, value)
    text = value.strip()
    if _DIGITS.match(text):
        return int(text) / 1000.0
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad_time(name, value) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.timestamp()


def _bad_time(name: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(f"'{name}' must be epoch milliseconds (e.g. 1764770000000) or ISO 8601 (e.g. "
                               f"2026-12-03T14:00:00Z); got {shown_item(value)!r}")


def parse_time_range(raw_from: object, raw_to: object) -> tuple[float, float]:
    """(start, end) in epoch seconds; absent: from the oldest, to the newest."""
    start = parse_instant(raw_from, "from") if raw_from is not None else 0.0
    end = parse_instant(raw_to, "to") if raw_to is not None else math.inf
    if start > end:
        raise InvalidRequestError(f"'from' ({shown_item(raw_from)}) is after 'to' ({shown_item(raw_to)}): the "
                                  "range must run forwards")
    return start, end


def parse_kind(value: object) -> Kind:
    """The ``stream`` of a history read or replay (absent: ticker)."""
    if value is None:
        return Kind.TICKER
    if not isinstance(value, str) or value not in {kind.value for kind in Kind}:
        raise InvalidRequestError(f"'stream' must be one of {_KIND_NAMES}; got {shown_item(value)!r}")
    return Kind(value)


def parse_speed(value: object) -> float:
    """A replay's ``speed``: 1 (the default) as recorded, 10 ten times faster, 0 as fast as the client reads."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_SPEED \
            or not math.isfinite(value):
        raise InvalidRequestError(f"'speed' must be a number from 0 (as fast as you read) to {MAX_SPEED:g}, 1 "
                                  f"being the recorded pace; got {shown_item(value)!r}")
    return float(value)


def _whole(raw: str | None, name: str, low: int, high: int, default: int) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 16 or not low <= int(text) <= high:
        raise InvalidRequestError(f"'{name}' must be a whole number from {low} to {high}; got {shown_item(raw)!r}")
    return int(text)


def parse_history_query(args: Mapping[str, str]) -> HistoryQuery:
    """``GET /history`` query parameters: stream, from, to, limit (1-MAX_LIMIT, default DEFAULT_LIMIT), after (an
    offset, for paging), epoch (optional: refused when it is no longer the channel's)."""
    start, end = parse_time_range(args.get("from"), args.get("to"))
    epoch = args.get("epoch")
    if epoch is not None and not re.match(r"^[A-Za-z0-9_-]{1,64}$", epoch):
        raise InvalidRequestError(f"'epoch' must be the epoch of an earlier page; got {shown_item(epoch)!r}")
    return HistoryQuery(
        kind=parse_kind(args.get("stream")),
        start=start,
        end=end,
        limit=_whole(args.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT),
        after=_whole(args.get("after"), "after", 0, MAX_OFFSET, 0),
        epoch=epoch,
    )
