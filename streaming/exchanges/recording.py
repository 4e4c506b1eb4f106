"""Recordings of upstream frames, without I/O: the line format, the file of each UTC day, and the shift that
makes a replayed frame look live. Pure: no files, sockets or clocks (callers pass times in).

A recording is JSON Lines, one line per text frame as it was received,
``{"t": <receive time, epoch ms>, "exchange": "binance" | "bybit", "route": "/market", "frame": "<the raw text
frame>"}`` (a line without ``exchange`` is Binance's: recordings made before there was a second exchange),
gzip-compressed, one file per UTC day: the prefix ``recordings/upstream`` names
``recordings/upstream-2026-12-03.jsonl.gz``. One recording may hold the frames of several exchanges.

Replaying moves the times of every frame by one constant per loop (so the data looks live, and each loop comes
after the one before) and, from the second loop on, the ids the ordering gates compare on by the recording's
span of them, so that nothing looped is dropped as old or repeated. Which numbers of a frame are times and which
are ids is the exchange's (``Exchange.replay_fields``). The shifted frame then goes through the exchange's
``WireSession``, the parser of live frames: one session per exchange and route, as one connection would have.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeGuard

from streaming.core.channels import BINANCE
from streaming.core.errors import ProtocolError
from streaming.exchanges.adapter import TIME, Exchange, WireSession
from streaming.exchanges.messages import Message, StreamBatch
from streaming.exchanges.registry import EXCHANGES

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

IdKey = tuple[str, str, str]  # (exchange, id family, SYMBOL)


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded frame: when it was received (epoch ms), on which route of which exchange, and its text as
    received."""

    t: float
    route: str
    frame: str
    exchange: str = BINANCE


def encode_record(record: Record) -> str:
    """The JSON line of a record, without its newline."""
    return json.dumps({"t": record.t, "exchange": record.exchange, "route": record.route, "frame": record.frame},
                      ensure_ascii=False, separators=(",", ":"))


def decode_record(line: str) -> Record:
    """A record from its JSON line; ProtocolError says what is wrong with a line that is not one."""
    try:
        body = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not a JSON line: {str(exc)[:80]}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"a line must be a JSON object, got {type(body).__name__}")
    t, route, frame = body.get("t"), body.get("route"), body.get("frame")
    name = body.get("exchange", BINANCE)
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
        raise ProtocolError(f"'t' must be the receive time in epoch milliseconds, got {t!r:.40}")
    exchange = EXCHANGES.get(name) if isinstance(name, str) else None
    if exchange is None:
        raise ProtocolError(f"'exchange' must be one of {', '.join(EXCHANGES)}, got {name!r:.40}")
    if route not in exchange.routes:
        raise ProtocolError(f"'route' must be one of {exchange.name}'s {', '.join(exchange.routes)}, "
                            f"got {route!r:.40}")
    if not isinstance(frame, str):
        raise ProtocolError(f"'frame' must be the frame's text, got {type(frame).__name__}")
    return Record(float(t), route, frame, exchange.name)


def day_file(prefix: str, epoch_ms: float) -> str:
    """The file of the UTC day of ``epoch_ms``: ``<prefix>-YYYY-MM-DD.jsonl.gz`` (a prefix that already ends in
    ``.jsonl.gz``, ``.jsonl`` or ``.gz`` loses that ending first)."""
    for ending in (SUFFIX, ".jsonl", ".gz"):
        if prefix.endswith(ending):
            prefix = prefix[: -len(ending)]
            break
    day = datetime.fromtimestamp(epoch_ms / 1000.0, UTC).date()
    return f"{prefix}-{day.isoformat()}{SUFFIX}"


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def shift_frame(exchange: Exchange, frame: object, time_shift: int,
                id_shifts: Mapping[tuple[str, str], int]) -> None:
    """Move, in place, the times of a decoded frame by ``time_shift`` ms and its ids by
    ``id_shifts[(family, SYMBOL)]``. Fields that are not non-negative whole numbers are left as they are (the
    parser refuses them as it would live)."""
    for field in exchange.replay_fields(frame):
        amount = time_shift if field.family == TIME else id_shifts.get((field.family, field.symbol), 0)
        value = field.holder.get(field.name)
        if amount and _whole(value):
            field.holder[field.name] = value + amount


class Sessions:
    """One WireSession per (exchange, route) of a recording, as one connection of each would hold."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], WireSession] = {}

    def parse(self, record: Record, frame: object | None) -> Message:
        """The record's frame as the exchange's parser classifies it: ``frame`` decoded (and shifted), or None
        for text that is not JSON (the parser says what it is)."""
        key = (record.exchange, record.route)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = EXCHANGES[record.exchange].session()
        return session.decode(record.frame) if frame is None else session.parse(frame)


def _decoded(text: str) -> object | None:
    """The frame decoded from JSON, or None for text that is not JSON."""
    try:
        decoded: object = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded


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
    id_spans: Mapping[IdKey, int]  # (exchange, family, SYMBOL) -> highest id - lowest id + 1
    streams: Mapping[tuple[str, str], frozenset[str]]  # (exchange, route) -> the streams that carried updates
    symbols: Mapping[str, frozenset[str]]  # exchange -> the symbols that had updates

    @property
    def duration_ms(self) -> float:
        return self.last_t - self.first_t

    def streams_of(self, exchange: str, route: str) -> frozenset[str]:
        return self.streams.get((exchange, route), frozenset())

    def symbols_of(self, exchange: str) -> frozenset[str]:
        return self.symbols.get(exchange, frozenset())


class Scan:
    """A first pass over a recording's records, in order, that makes its RecordingSummary."""

    def __init__(self) -> None:
        self._timeline = Timeline()
        self._sessions = Sessions()
        self._frames = 0
        self._data_frames = 0
        self._first_t: float | None = None
        self._last_t = 0.0
        self._low = math.inf  # lowest and highest replay-time offset of any ordered time (and receive time)
        self._high = -math.inf
        self._ids: dict[IdKey, tuple[int, int]] = {}
        self._streams: dict[tuple[str, str], set[str]] = {}
        self._symbols: dict[str, set[str]] = {}

    def add(self, record: Record) -> Message:
        """Take one record into account; returns its frame as the parser classifies it."""
        offset = self._timeline.place(record.t)
        self._frames += 1
        if self._first_t is None:
            self._first_t = record.t
        self._last_t = record.t
        self._extend(offset)
        frame = _decoded(record.frame)
        if frame is not None:
            for field in EXCHANGES[record.exchange].replay_fields(frame):
                value = field.holder.get(field.name)
                if not _whole(value):
                    continue
                if field.family != TIME:
                    self._extend_ids((record.exchange, field.family, field.symbol), value)
                elif field.ordered:
                    self._extend(offset + value - record.t)
        message = self._sessions.parse(record, frame)
        if isinstance(message, StreamBatch) and message.updates:
            self._data_frames += 1
            self._streams.setdefault((record.exchange, record.route), set()).add(message.stream)
            self._symbols.setdefault(record.exchange, set()).update(update.symbol for update in message.updates)
        return message

    def _extend(self, value: float) -> None:
        self._low = min(self._low, value)
        self._high = max(self._high, value)

    def _extend_ids(self, key: IdKey, value: int) -> None:
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
            streams={key: frozenset(streams) for key, streams in self._streams.items()},
            symbols={name: frozenset(symbols) for name, symbols in self._symbols.items()},
        )


class Playback:
    """The records of a recording loop after loop: when each is due, and its frame shifted and parsed.

    A loop's records are due at their recorded offsets from the loop's start, loops ``period_ms`` apart (the
    shell divides by the speed). Their times move by one constant per loop (less the pauses left out): loop 0's
    first record gets ``start_ms``; each later loop starts ``period_ms`` after the one before, or at ``now_ms``
    if that is later (a replay slower than recorded starts each loop live again). So at speed 1 a frame
    received ``x`` ms after the first one carries the times it had ``x`` ms after ``start_ms``, and every
    loop's times come after the previous loop's. Ids move by ``k`` times their family's span in loop ``k``.
    The parsers' sessions live across loops, as one long connection per exchange and route."""

    def __init__(self, summary: RecordingSummary, start_ms: float) -> None:
        self._summary = summary
        self._base = start_ms - summary.period_ms  # where the loop before the first one would have started
        self.loop = -1
        self._timeline = Timeline()
        self._sessions = Sessions()
        self._id_shifts: dict[str, dict[tuple[str, str], int]] = {}

    def next_loop(self, now_ms: float | None = None) -> None:
        """Start the next loop (the first call starts loop 0): its records come again from the first one."""
        self.loop += 1
        self._base = max(self._base + self._summary.period_ms, now_ms if now_ms is not None else -math.inf)
        self._timeline = Timeline()
        self._id_shifts = {}
        for (exchange, family, symbol), span in self._summary.id_spans.items():
            self._id_shifts.setdefault(exchange, {})[(family, symbol)] = self.loop * span

    @property
    def loop_offset_ms(self) -> int:
        """When this loop is due, in ms after the start of playback (at speed 1)."""
        return self.loop * self._summary.period_ms

    def place(self, record: Record) -> tuple[float, Message]:
        """``(due, message)``: the record is due ``due`` ms after the start of playback at speed 1 (divide by
        the speed), and ``message`` is its frame, shifted, as the parser classifies it."""
        offset = self._timeline.place(record.t)
        frame = _decoded(record.frame)
        if frame is not None:
            time_shift = round(self._base - self._summary.first_t - self._timeline.skipped)
            shift_frame(EXCHANGES[record.exchange], frame, time_shift, self._id_shifts.get(record.exchange, {}))
        return offset + self.loop_offset_ms, self._sessions.parse(record, frame)
