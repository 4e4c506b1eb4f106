"""Recordings of Binance upstream frames, without I/O: the line format, the file of each UTC day, and the shift
that makes a replayed frame look live. Pure: no files, sockets or clocks (callers pass times in).

A recording is JSON Lines, one line per text frame as it was received,
``{"t": <receive time, epoch ms>, "route": "/market" | "/public", "frame": "<the raw text frame>"}``,
gzip-compressed, one file per UTC day: the prefix ``recordings/binance`` names
``recordings/binance-2026-12-03.jsonl.gz``.

Replaying moves the times of every frame by one constant per loop (so the data looks live, and each loop comes
after the one before) and, from the second loop on, the ids the ordering gates compare (aggTrade ``a``, trade
ids ``f``/``l`` and a ticker's ``F``/``L``, bookTicker ``u``) on by the recording's span of them, so that
nothing looped is dropped as old or repeated. The shifted frame then goes through ``protocol.parse_frame``,
the parser of live frames.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from streaming.core.channels import Kind
from streaming.core.errors import ProtocolError
from streaming.exchanges.binance.protocol import Message, StreamBatch, parse_frame, parse_message
from streaming.exchanges.binance.streams import ROUTES, STREAMS

__all__ = [
    "LOOP_GAP_MS",
    "MAX_PAUSE_MS",
    "SUFFIX",
    "Playback",
    "Record",
    "RecordingSummary",
    "Scan",
    "Timeline",
    "day_file",
    "decode_record",
    "encode_record",
    "shift_frame",
]

SUFFIX = ".jsonl.gz"
# A pause in a recording longer than this (the recorder was restarted, days are missing from a glob) is
# replayed as this long, so a replay never sits silent for hours.
MAX_PAUSE_MS = 5_000.0
# Between the last frame of one loop and the first of the next, in recorded time.
LOOP_GAP_MS = 1_000

_TICKER, _TRADE, _BOOK = (STREAMS[kind].event for kind in (Kind.TICKER, Kind.TRADE, Kind.BOOK))
# The times the ordering gate and the freshness checks read ("WebSocket Market Streams": E event time, T trade
# or transaction time); a loop's span is measured on them. Events not listed here have their E moved.
ORDERED_TIMES: Mapping[str, tuple[str, ...]] = {_TICKER: ("E",), _TRADE: ("E", "T"), _BOOK: ("E", "T")}
# Times moved along with those: a ticker's 24-hour statistics window (O open time, C close time).
OTHER_TIMES: Mapping[str, tuple[str, ...]] = {_TICKER: ("O", "C")}
# Ids moved on every loop, by family: each family's span is measured per symbol over all its fields.
AGGREGATE_IDS, TRADE_IDS, BOOK_IDS = "aggregate trade", "trade", "book update"
ID_FIELDS: Mapping[str, Mapping[str, str]] = {
    _TICKER: {"F": TRADE_IDS, "L": TRADE_IDS},
    _TRADE: {"a": AGGREGATE_IDS, "f": TRADE_IDS, "l": TRADE_IDS},
    _BOOK: {"u": BOOK_IDS},
}


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded frame: when it was received (epoch ms), on which route, and its text as received."""

    t: float
    route: str
    frame: str


def encode_record(record: Record) -> str:
    """The JSON line of a record, without its newline."""
    return json.dumps({"t": record.t, "route": record.route, "frame": record.frame}, ensure_ascii=False,
                      separators=(",", ":"))


def decode_record(line: str) -> Record:
    """A record from its JSON line; ProtocolError says what is wrong with a line that is not one."""
    try:
        body = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not a JSON line: {str(exc)[:80]}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"a line must be a JSON object, got {type(body).__name__}")
    t, route, frame = body.get("t"), body.get("route"), body.get("frame")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
        raise ProtocolError(f"'t' must be the receive time in epoch milliseconds, got {t!r:.40}")
    if route not in ROUTES:
        raise ProtocolError(f"'route' must be one of {', '.join(ROUTES)}, got {route!r:.40}")
    if not isinstance(frame, str):
        raise ProtocolError(f"'frame' must be the frame's text, got {type(frame).__name__}")
    return Record(float(t), route, frame)


def day_file(prefix: str, epoch_ms: float) -> str:
    """The file of the UTC day of ``epoch_ms``: ``<prefix>-YYYY-MM-DD.jsonl.gz`` (a prefix that already ends in
    ``.jsonl.gz``, ``.jsonl`` or ``.gz`` loses that ending first)."""
    for ending in (SUFFIX, ".jsonl", ".gz"):
        if prefix.endswith(ending):
            prefix = prefix[: -len(ending)]
            break
    day = datetime.fromtimestamp(epoch_ms / 1000.0, UTC).date()
    return f"{prefix}-{day.isoformat()}{SUFFIX}"


def data_rows(frame: object) -> list[dict[str, Any]]:
    """The payloads of a combined-stream data frame (one, or the rows of an array stream); [] for any other."""
    if not isinstance(frame, dict) or "stream" not in frame:
        return []
    data = frame.get("data")
    rows = data if isinstance(data, list) else [data]
    return [row for row in rows if isinstance(row, dict)]


def shift_frame(frame: object, time_shift: int, id_shifts: Mapping[tuple[str, str], int]) -> None:
    """Move, in place, the times of a decoded frame's payloads by ``time_shift`` ms and their ids by
    ``id_shifts[(family, SYMBOL)]``. Fields that are not non-negative whole numbers are left as they are (the
    parser refuses them as it would live)."""
    for row in data_rows(frame):
        event = row.get("e")
        key = event if isinstance(event, str) else ""
        for name in ORDERED_TIMES.get(key, ("E",)) + OTHER_TIMES.get(key, ()):
            _add(row, name, time_shift)
        symbol = row.get("s")
        if not isinstance(symbol, str):
            continue
        for name, family in ID_FIELDS.get(key, {}).items():
            _add(row, name, id_shifts.get((family, symbol.upper()), 0))


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _add(row: dict[str, Any], name: str, amount: int) -> None:
    value = row.get(name)
    if amount and _whole(value):
        row[name] = value + amount


def _decoded(text: str) -> tuple[object, Message | None]:
    """The frame decoded from JSON, or (None, the parser's verdict on text that is not JSON)."""
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):
        return None, parse_message(text)


class Timeline:
    """Recorded time -> replay time: milliseconds since the first record, pauses capped at MAX_PAUSE_MS."""

    def __init__(self) -> None:
        self._first: float | None = None
        self._last = 0.0
        self.skipped = 0.0  # recorded ms left out so far (long pauses beyond MAX_PAUSE_MS; time running back)

    def place(self, t: float) -> float:
        """The replay-time offset of a record received at ``t`` (records in recorded order)."""
        if self._first is None:
            self._first = self._last = t
        step = t - self._last
        self.skipped += step - min(max(step, 0.0), MAX_PAUSE_MS)
        self._last = t
        return t - self._first - self.skipped


@dataclass(frozen=True)
class RecordingSummary:
    """What playing a recording needs to know before its first frame: where it starts, how far each loop moves
    times (``period_ms``) and ids (``id_spans``), and what it carries."""

    frames: int
    data_frames: int  # frames that carried updates the parser accepted
    first_t: float
    last_t: float
    period_ms: int
    id_spans: Mapping[tuple[str, str], int]  # (family, SYMBOL) -> highest id - lowest id + 1
    streams: Mapping[str, frozenset[str]]  # route -> the streams that carried updates on it
    symbols: frozenset[str]

    @property
    def duration_ms(self) -> float:
        return self.last_t - self.first_t


class Scan:
    """A first pass over a recording's records, in order, that makes its RecordingSummary."""

    def __init__(self) -> None:
        self._timeline = Timeline()
        self._frames = 0
        self._data_frames = 0
        self._first_t: float | None = None
        self._last_t = 0.0
        self._low = math.inf  # lowest and highest replay-time offset of any ordered time (and receive time)
        self._high = -math.inf
        self._ids: dict[tuple[str, str], tuple[int, int]] = {}
        self._streams: dict[str, set[str]] = {route: set() for route in ROUTES}
        self._symbols: set[str] = set()

    def add(self, record: Record) -> Message:
        """Take one record into account; returns its frame as the parser classifies it."""
        offset = self._timeline.place(record.t)
        self._frames += 1
        if self._first_t is None:
            self._first_t = record.t
        self._last_t = record.t
        self._extend(offset)
        frame, verdict = _decoded(record.frame)
        if verdict is not None:
            return verdict
        for row in data_rows(frame):
            event = row.get("e")
            key = event if isinstance(event, str) else ""
            for name in ORDERED_TIMES.get(key, ("E",)):
                value = row.get(name)
                if _whole(value):
                    self._extend(offset + value - record.t)
            symbol = row.get("s")
            if isinstance(symbol, str):
                for name, family in ID_FIELDS.get(key, {}).items():
                    value = row.get(name)
                    if _whole(value):
                        self._extend_ids((family, symbol.upper()), value)
        message = parse_frame(frame)
        if isinstance(message, StreamBatch) and message.updates:
            self._data_frames += 1
            self._streams[record.route].add(message.stream)
            self._symbols.update(update.symbol for update in message.updates)
        return message

    def _extend(self, value: float) -> None:
        self._low = min(self._low, value)
        self._high = max(self._high, value)

    def _extend_ids(self, key: tuple[str, str], value: int) -> None:
        low, high = self._ids.get(key, (value, value))
        self._ids[key] = (min(low, value), max(high, value))

    def summary(self) -> RecordingSummary:
        first = self._first_t if self._first_t is not None else 0.0
        span = self._high - self._low if self._frames else 0.0
        return RecordingSummary(
            frames=self._frames,
            data_frames=self._data_frames,
            first_t=first,
            last_t=self._last_t if self._frames else first,
            period_ms=math.ceil(span) + LOOP_GAP_MS,
            id_spans={key: high - low + 1 for key, (low, high) in self._ids.items()},
            streams={route: frozenset(streams) for route, streams in self._streams.items()},
            symbols=frozenset(self._symbols),
        )


class Playback:
    """The records of a recording loop after loop: when each is due, and its frame shifted and parsed.

    A loop's records are due at their recorded offsets from the loop's start, loops ``period_ms`` apart (the
    shell divides by the speed). Their times move by one constant per loop (less the pauses left out): loop 0's
    first record gets ``start_ms``; each later loop starts ``period_ms`` after the one before, or at ``now_ms``
    if that is later (a replay slower than recorded starts each loop live again). So at speed 1 a frame
    received ``x`` ms after the first one carries the times it had ``x`` ms after ``start_ms``, and every
    loop's times come after the previous loop's. Ids move by ``k`` times their family's span in loop ``k``."""

    def __init__(self, summary: RecordingSummary, start_ms: float) -> None:
        self._summary = summary
        self._base = start_ms - summary.period_ms  # where the loop before the first one would have started
        self.loop = -1
        self._timeline = Timeline()
        self._id_shifts: dict[tuple[str, str], int] = {}

    def next_loop(self, now_ms: float | None = None) -> None:
        """Start the next loop (the first call starts loop 0): its records come again from the first one."""
        self.loop += 1
        self._base = max(self._base + self._summary.period_ms, now_ms if now_ms is not None else -math.inf)
        self._timeline = Timeline()
        self._id_shifts = {key: self.loop * span for key, span in self._summary.id_spans.items()}

    @property
    def loop_offset_ms(self) -> int:
        """When this loop is due, in ms after the start of playback (at speed 1)."""
        return self.loop * self._summary.period_ms

    def place(self, record: Record) -> tuple[float, Message]:
        """``(due, message)``: the record is due ``due`` ms after the start of playback at speed 1 (divide by
        the speed), and ``message`` is its frame, shifted, as the parser classifies it."""
        offset = self._timeline.place(record.t)
        frame, verdict = _decoded(record.frame)
        if verdict is not None:
            return offset + self.loop_offset_ms, verdict
        time_shift = round(self._base - self._summary.first_t - self._timeline.skipped)
        shift_frame(frame, time_shift, self._id_shifts)
        return offset + self.loop_offset_ms, parse_frame(frame)
