"""Replay: a recording in the place of the exchanges. Its frames reach the service as live ones do, through the
same parsers and ``StreamingService.on_updates``; no WebSocket is opened and no REST request is sent.

One task reads the recording once (``recording.Scan``: its symbols, streams, span), then plays it in recorded
order and spacing divided by the speed, shifted to look live (``recording.Playback``), and again from the start
when it loops. ``ReplayPool`` stands in for each enabled exchange's UpstreamPool of each route (demand is only
bookkeeping: every stream of the recording is played, and the fan-out skips channels without subscribers), and
``ReplayRest`` for each exchange's REST client: its tradable symbols are the recording's, the market-data
look-ups fail at once. Frames of an exchange that EXCHANGES does not enable are skipped.
"""
from __future__ import annotations

import gzip
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from streaming.core.channels import market_of
from streaming.core.errors import ProtocolError, UpstreamUnavailableError
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.core.pacing import RequestGate
from streaming.exchanges.adapter import Exchange
from streaming.exchanges.messages import ErrorReply, Message, StreamBatch, Unrecognised
from streaming.exchanges.recording import Playback, Record, RecordingSummary, Scan, decode_record
from streaming.runtime.tasks import PeriodicTask, TaskRunner
from streaming.upstream.connection import UpstreamStatus

__all__ = ["Replay", "ReplayPool", "ReplayRest", "read_records"]

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
YIELD_EVERY = 200  # frames handled between two yields to the other tasks when frames are due back to back
SCAN_YIELD_EVERY = 1000
# How long exchangeInfo waits for the first pass over the recording before it says the symbols are not known yet.
SCAN_WAIT = 30.0
IDLE = 3600.0  # the task's wait once the replay has ended (stop wakes it)
NOT_USED = "REST is not used while replaying a recording"


class UpdateSink(Protocol):
    """Where replayed updates go: the service, as for live frames."""

    def on_updates(self, batch: StreamBatch, received_at: float) -> None: ...


def read_records(paths: Sequence[Path], on_bad: Callable[[Path, int, str], None]) -> Iterator[Record]:
    """The records of the files in order (gzip or plain JSON Lines). A line that is not a record, or a file that
    ends abruptly (its recorder was killed), is reported to ``on_bad`` (path, line number, why) and skipped."""
    for path in paths:
        number = 0
        try:
            with open(path, "rb") as raw:
                compressed = raw.read(2) == GZIP_MAGIC
            opened = gzip.open(path, "rt", encoding="utf-8") if compressed else open(path, encoding="utf-8")
            with opened as lines:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        yield decode_record(line)
                    except ProtocolError as exc:
                        on_bad(path, number, str(exc))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
            on_bad(path, number + 1, f"unreadable from here on ({type(exc).__name__}: {exc})")


class Replay:
    """Plays a recording to the service as its upstream. Thread-safe views; I/O happens in its task."""

    def __init__(
        self,
        paths: Sequence[Path],
        sink: UpdateSink,
        tasks: TaskRunner,
        exchanges: Mapping[str, Exchange],
        *,
        name: str,
        speed: float = 1.0,
        loop: bool = True,
        on_error: Callable[[str], None] = lambda name: None,
        task_name: str = "upstream replay",
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = list(paths)
        self.exchanges = dict(exchanges)  # the enabled ones: frames of any other are skipped
        self.name = name  # as configured (UPSTREAM_REPLAY_FILE), for logs and /health
        self.speed = speed
        self.loop = loop
        self._sink = sink
        self._tasks = tasks
        self._wall_clock = wall_clock
        self._clock = clock
        self._task = PeriodicTask(task_name, tasks, self._step, IDLE, on_error)
        self._stopping = threading.Event()
        self._scanned = threading.Event()
        self.state = "connecting"  # reading the recording; "live" while playing; "stopped" once it ended
        self.summary: RecordingSummary | None = None
        self._playback: Playback | None = None
        self._records: Iterator[Record] = iter(())
        self._pending: tuple[float, Record, Message] | None = None  # (due, record, message) of the next record
        self._started_at = 0.0
        self.connected_since: float | None = None
        self.loops = 0  # loops completed
        self.frames = 0  # data frames handed to the service
        routes = [(name, route) for name, exchange in self.exchanges.items() for route in exchange.routes]
        self.messages = dict.fromkeys(routes, 0)  # (exchange, route) -> data frames played
        self.last_message_at: dict[tuple[str, str], float | None] = dict.fromkeys(routes)
        self._reported: set[str] = set()

    def pools(self) -> dict[tuple[str, str], ReplayPool]:
        """One stand-in pool per enabled exchange and route, for the service and its demand."""
        return {key: ReplayPool(self, self.exchanges[key[0]], key[1], index)
                for index, key in enumerate(self.messages)}

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._scanned.set()  # nobody waits for a first pass that will not finish
        if not self._task.stop(timeout):
            log.warning("replay of %s did not stop within %.1fs", self.name, timeout)
        self.state = "stopped"

    def wait_scanned(self, timeout: float) -> RecordingSummary | None:
        """The recording's summary once the first pass is done (None if it is not within ``timeout``)."""
        self._scanned.wait(timeout)
        return self.summary

    # -- views ------------------------------------------------------------------------------------------------
    def streams(self, exchange: str, route: str) -> frozenset[str]:
        """The streams played on an exchange's route: those of the recording, once playing."""
        summary = self.summary
        if summary is None or self.state != "live":
            return frozenset()
        return summary.streams_of(exchange, route)

    def status(self, exchange: str, route: str, index: int) -> UpstreamStatus | None:
        """The route's stand-in connection, if the recording carries the route (or is still being read)."""
        summary = self.summary
        if summary is not None and not summary.streams_of(exchange, route):
            return None
        key = (exchange, route)
        return UpstreamStatus(index, self.state, f"{self.name} ({exchange} {route}, replay)",
                              len(self.streams(exchange, route)), self.connected_since, self.last_message_at[key],
                              self.messages[key], 0, exchange)

    def describe(self) -> dict[str, Any]:
        """For /health: what is replayed, how, and how far it got."""
        summary = self.summary
        return {
            "file": self.name,
            "files": len(self.paths),
            "speed": self.speed,
            "loop": self.loop,
            "state": {"connecting": "reading", "live": "playing"}.get(self.state, "finished"),
            "recorded_seconds": round(summary.duration_ms / 1000.0, 3) if summary else None,
            # markets as the stores name them: BTCUSDT (Binance), bybit:BTCUSDT
            "symbols": sorted(market_of(exchange, symbol) for exchange, symbols in summary.symbols.items()
                              for symbol in symbols) if summary else [],
            "loops_completed": self.loops,
            "frames_replayed": self.frames,
        }

    # -- the task ---------------------------------------------------------------------------------------------
    def _step(self) -> float:
        if self.state == "stopped" or self._stopping.is_set():
            return IDLE
        if self._playback is None:
            return self._begin()
        handled = 0
        while not self._stopping.is_set():
            if self._pending is None:
                self._pending = self._next()
                if self._pending is None:
                    self._finish()
                    return IDLE
            due, record, message = self._pending
            if self.speed > 0:
                wait = self._started_at + due / 1000.0 / self.speed - self._clock()
                if wait > 0:
                    return wait
            self._pending = None
            self._deliver(record, message)
            handled += 1
            if self.speed == 0 or handled % YIELD_EVERY == 0:
                self._tasks.sleep(0)
        return IDLE

    def _begin(self) -> float:
        """The first pass: the summary that exchangeInfo, the stand-in pools and the shifts need."""
        scan = Scan()
        for count, record in enumerate(read_records(self.paths, self._bad_line), 1):
            if self._stopping.is_set():
                return IDLE
            scan.add(record)
            if count % SCAN_YIELD_EVERY == 0:
                self._tasks.sleep(0)
        summary = scan.summary()
        self.summary = summary
        if not summary.data_frames:
            log.error("replay: %s holds no market data (%d frames); nothing to play", self.name, summary.frames)
            self.state = "stopped"
            self._scanned.set()
            return IDLE
        self._playback = Playback(summary, self._wall_clock() * 1000.0)
        self._playback.next_loop()
        self._records = read_records(self.paths, self._bad_line)
        self._started_at = self.connected_since = self._clock()
        self.state = "live"
        self._scanned.set()
        log.info(
            "replaying %s%s: %d frames of %d symbols over %.0fs, at %s, %s; no connection to any exchange",
            self.name, f" ({len(self.paths)} files)" if len(self.paths) > 1 else "", summary.frames,
            sum(map(len, summary.symbols.values())),
            summary.duration_ms / 1000.0,
            f"{self.speed:g}x" if self.speed else "full speed", "looping" if self.loop else "once",
        )
        return 0.0

    def _next(self) -> tuple[float, Record, Message] | None:
        """The next record's (due, record, message), from the next loop at the end of one; None at the end."""
        assert self._playback is not None
        for attempt in range(2):
            record = next(self._records, None)
            if record is not None:
                due, message = self._playback.place(record)
                return due, record, message
            if attempt or not self.loop or self._stopping.is_set():
                return None
            self.loops += 1
            self._playback.next_loop(self._wall_clock() * 1000.0)
            self._records = read_records(self.paths, self._bad_line)
            log.debug("replay of %s: loop %d", self.name, self._playback.loop + 1)
        return None

    def _deliver(self, record: Record, message: Message) -> None:
        key = (record.exchange, record.route)
        if key not in self.messages:
            if record.exchange not in self._reported:
                self._reported.add(record.exchange)
                log.warning("replay of %s: skipping the frames of %s, which EXCHANGES does not enable", self.name,
                            record.exchange)
            return
        if isinstance(message, StreamBatch):
            self.frames += 1
            self.messages[key] += 1
            self.last_message_at[key] = self._clock()
            self._sink.on_updates(message, time.perf_counter())
        elif isinstance(message, ErrorReply | Unrecognised):  # replies to SUBSCRIBE are expected and skipped
            kind = message.kind if isinstance(message, Unrecognised) else "error_frame"
            if kind not in self._reported:
                self._reported.add(kind)
                log.warning("replay of %s: skipping a frame that carries no updates (%s); further ones are "
                            "skipped silently", self.name, kind)

    def _finish(self) -> None:
        self.loops += 1
        self.state = "stopped"
        log.warning("replay of %s finished (UPSTREAM_REPLAY_LOOP=false): no more market data", self.name)

    def _bad_line(self, path: Path, number: int, why: str) -> None:
        key = f"{path}:{why.split(':')[0]}"
        if key not in self._reported:  # once per file and kind of fault, on every pass
            self._reported.add(key)
            log.warning("replay: %s line %d skipped: %s", path.name, number, why)


class ReplayPool:
    """One route of a replay, with the part of UpstreamPool's interface that the service and Demand use."""

    def __init__(self, replay: Replay, exchange: Exchange, route: str, index: int) -> None:
        self.exchange = exchange
        self.route = route
        self._replay = replay
        self._index = index
        self._lock = threading.Lock()
        self._pinned: set[str] = set()
        self._wanted: set[str] = set()

    def pin(self, streams: Iterable[str]) -> None:
        with self._lock:
            self._pinned.update(streams)

    def want(self, stream: str) -> None:
        with self._lock:
            self._wanted.add(stream)

    def release(self, stream: str, grace: float | None = None) -> None:
        """No grace period: releasing costs nothing upstream (the replay plays every stream anyway)."""
        with self._lock:
            self._wanted.discard(stream)

    def start(self, connect_idle: bool = True) -> None:
        """Nothing to connect: the replay's own task plays every route."""

    def stop(self, timeout: float = 5.0) -> None:
        """Nothing to close."""

    def wanted_streams(self) -> list[str]:
        with self._lock:
            return sorted(self._pinned | self._wanted)

    def active_streams(self) -> list[str]:
        return sorted(self._replay.streams(self.exchange.name, self.route))

    def statuses(self) -> list[UpstreamStatus]:
        status = self._replay.status(self.exchange.name, self.route, self._index)
        return [] if status is None else [status]


class ReplayRest:
    """An exchange's REST client while replaying: its tradable symbols are those the recording has updates of;
    every market-data look-up fails at once (UpstreamUnavailableError), so /price and new subscribers wait for
    the replayed updates and nothing is asked of the exchange."""

    def __init__(self, replay: Replay, exchange: Exchange, wall_clock: Callable[[], float] = time.time) -> None:
        self._replay = replay
        self._exchange = exchange
        self.title = f"the recording {replay.name} (no REST calls to {exchange.title})"
        self.gate = RequestGate(wall_clock)  # never closed: no request is ever sent
        self.last_ok: bool | None = None

    def available(self) -> bool:
        return False

    def tradable_symbols(self) -> frozenset[str]:
        summary = self._replay.wait_scanned(SCAN_WAIT)
        if summary is None:
            raise UpstreamUnavailableError(f"the recording {self._replay.name} is still being read")
        symbols = summary.symbols_of(self._exchange.name)
        if not symbols:
            raise UpstreamUnavailableError(
                f"the recording {self._replay.name} holds no market data of {self._exchange.title}")
        return symbols

    def ticker(self, symbol: str) -> Ticker:
        raise UpstreamUnavailableError(NOT_USED)

    def book_ticker(self, symbol: str) -> BookTicker:
        raise UpstreamUnavailableError(NOT_USED)

    def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        raise UpstreamUnavailableError(NOT_USED)

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None) -> list[Trade]:
        raise UpstreamUnavailableError(NOT_USED)

    def close(self) -> None:
        """Nothing to close."""
