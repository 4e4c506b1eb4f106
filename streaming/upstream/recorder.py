"""FrameRecorder: writes the upstream's raw text frames to gzip JSON Lines, one file per UTC day, in the background.

``offer`` is the connections' tap (``UpstreamConnection(tap=...)``): it never blocks and never does I/O. Frames
wait in a bounded queue for the writer task; when the queue is full a frame is dropped and counted. The writer
rotates to the next day's file at the UTC day boundary (by each frame's receive time), flushes every
FLUSH_INTERVAL (a recording cut short by a crash is readable up to then) and flushes and closes on stop.
The line format and the file names are ``streaming.exchanges.recording``'s.
"""
from __future__ import annotations

import gzip
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.exchanges.recording import Record, day_file, encode_record
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["FrameRecorder", "QUEUE_LIMIT"]

log = logging.getLogger(__name__)

# Frames waiting for the writer; beyond this many the newest are dropped (and counted), the reader never waits.
QUEUE_LIMIT = 20_000
WRITE_INTERVAL = 0.2
FLUSH_INTERVAL = 1.0
RETRY_INTERVAL = 5.0  # after a failed write, seconds before the file is opened again
YIELD_EVERY = 500  # lines written between two yields to the other tasks
COMPRESS_LEVEL = 6  # zlib's default: most of level 9's ratio for a fraction of its CPU


class FrameRecorder:
    """Records frames under a path prefix: ``recordings/binance`` -> ``recordings/binance-YYYY-MM-DD.jsonl.gz``
    (a day's file is appended to if it exists: a gzip file of several members reads as one)."""

    def __init__(
        self,
        prefix: str | Path,
        tasks: TaskRunner,
        *,
        queue_limit: int = QUEUE_LIMIT,
        on_error: Callable[[str], None] = lambda name: None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "upstream recorder",
    ) -> None:
        self.prefix = str(prefix)
        self._tasks = tasks
        self._limit = queue_limit
        self._on_error = on_error
        self._clock = clock
        self._queue: deque[tuple[str, str, bytes | str, float]] = deque()
        self._lock = threading.Lock()  # the counters; held for a few instructions, never across I/O
        self.offered = 0
        self.dropped = 0
        self.written = 0
        self._dropping = False  # in an overflow episode (logged once per episode)
        self._file: gzip.GzipFile | None = None
        self._path: str | None = None
        self.paths: list[str] = []  # every file written to, in order
        self._last_flush = 0.0
        self._retry_at = 0.0
        self._failing = False  # the last attempt to open or write failed (logged once per episode)
        self._task = PeriodicTask(name, tasks, self._round, WRITE_INTERVAL, on_error)

    # -- the tap ----------------------------------------------------------------------------------------------
    def offer(self, exchange: str, route: str, data: bytes | str, received_ms: float) -> None:
        """Queue one text frame received from ``exchange`` on ``route`` at ``received_ms`` (epoch ms); drops it
        when the queue is full. Never blocks, never raises."""
        with self._lock:
            self.offered += 1
            if len(self._queue) >= self._limit:
                self.dropped += 1
                first = not self._dropping
                self._dropping = True
            else:
                self._queue.append((exchange, route, data, received_ms))
                return
        if first:
            log.warning("recording to %s: the writer is %d frames behind; dropping frames until it catches up",
                        self.prefix, self._limit)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, flush and close the file."""
        if not self._task.stop(timeout):
            log.warning("recording to %s: the writer did not stop within %.1fs; %d frames left unwritten",
                        self.prefix, timeout, len(self._queue))
            return
        try:
            self._write_queued()
        finally:
            self._close()
        log.info("recording to %s stopped: %d frames written, %d dropped", self.prefix, self.written, self.dropped)

    def status(self) -> dict[str, Any]:
        """For /health: the file being written, and the frames written and dropped so far."""
        with self._lock:
            queued, dropped = len(self._queue), self.dropped
        return {"file": self._path or day_file(self.prefix, time.time() * 1000), "written": self.written,
                "dropped": dropped, "queued": queued}

    # -- the writer task --------------------------------------------------------------------------------------
    def _round(self) -> float:
        self._write_queued()
        if self._file is not None and self._clock() - self._last_flush >= FLUSH_INTERVAL:
            self._flush()
        return WRITE_INTERVAL

    def _write_queued(self) -> None:
        lines = 0
        while self._queue:
            exchange, route, data, received_ms = self._queue.popleft()
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            if not self._write(day_file(self.prefix, received_ms), Record(received_ms, route, text, exchange)):
                with self._lock:
                    self.dropped += 1
                continue
            self.written += 1
            lines += 1
            if lines % YIELD_EVERY == 0:
                self._tasks.sleep(0)
        if lines:
            with self._lock:
                self._dropping = False

    def _write(self, path: str, record: Record) -> bool:
        """Append one record to its day's file, opening (or rotating to) it first; False if that failed."""
        try:
            if path != self._path or self._file is None:
                if self._clock() < self._retry_at:
                    return False
                self._close()
                self._open(path)
            assert self._file is not None
            self._file.write(encode_record(record).encode() + b"\n")
            return True
        except OSError as exc:
            if not self._failing:  # once until a file opens again; task_errors counts every failure
                log.warning("recording to %s failed: %s; frames are dropped (and counted) and the file is tried "
                            "again every %.0fs", path, exc, RETRY_INTERVAL)
            self._failing = True
            self._on_error(self._task.name)
            self._retry_at = self._clock() + RETRY_INTERVAL
            self._close()
            return False

    def _open(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = gzip.open(path, "ab", compresslevel=COMPRESS_LEVEL)
        self._path = path
        self._last_flush = self._clock()
        self._failing = False
        if path not in self.paths:
            self.paths.append(path)
        log.info("recording upstream frames to %s", path)

    def _flush(self) -> None:
        try:
            if self._file is not None:
                self._file.flush()  # a sync flush: everything written so far can be read back
        except OSError as exc:
            log.warning("recording to %s: flushing failed: %s", self._path, exc)
            self._on_error(self._task.name)
            self._close()
        self._last_flush = self._clock()

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                log.warning("recording to %s: closing failed: %s", self._path, exc)
                self._on_error(self._task.name)
