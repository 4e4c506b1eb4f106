"""History replays over Socket.IO: ``replay {symbol, stream, from, to, speed}`` streams a channel's recorded
updates to the client that asked, as ``replay_data {replay_id, event, data}``, then ``replay_end {replay_id,
count}``; ``replay_stop {replay_id}`` ends one early (its ``replay_end`` then says ``stopped: true``).

Each replay is a background task of its own that pages through the history (streaming/hub/recorder.py) and
paces the updates by their recorded spacing divided by ``speed``; at ``speed`` 0 as fast as the client reads.
Whatever the speed, a replay waits while the client has more than REPLAY_BACKLOG packets queued, so a client
that reads slowly gets a slow replay, never an unbounded queue, and a replay never holds the fan-out's lock:
live delivery to everyone, the same client included, goes on beside it.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from metrics.collectors import ServiceMetrics
from metrics.labels import TaskName
from streaming.core.channels import Channel
from streaming.core.errors import StreamingError
from streaming.core.history import Page
from streaming.runtime.tasks import TaskRunner

__all__ = ["HistoryReader", "Replays", "TooManyReplaysError", "REPLAY_DATA", "REPLAY_END"]

log = logging.getLogger(__name__)

REPLAY_DATA = "replay_data"
REPLAY_END = "replay_end"
PAGE = 500  # updates read from the history at a time
REPLAY_BACKLOG = 100  # packets a client may have queued before its replays wait for it to read
BACKLOG_POLL = 0.02
YIELD_EVERY = 50  # updates sent in a row before a replay lets other tasks run


class HistoryReader(Protocol):
    """Where a channel's history is read: the recorder (streaming/hub/recorder.py), or on a gateway Redis
    (streaming/cluster/shared.py)."""

    def read(self, channel: Channel, after: int, start: float, end: float, limit: int) -> Page[str]: ...


class TooManyReplaysError(StreamingError):
    code = "TOO_MANY_REPLAYS"


@dataclass
class Replay:
    replay_id: str
    sid: str
    channel: Channel
    start: float
    end: float
    speed: float
    stopped: threading.Event = field(default_factory=threading.Event)


class Replays:
    def __init__(
        self,
        recorder: HistoryReader,
        emit: Callable[..., object],  # SocketIO.emit
        backlog: Callable[[str], int | None],  # packets queued for a client (sid); None: it is gone
        tasks: TaskRunner,
        metrics: ServiceMetrics,
        max_per_client: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recorder = recorder
        self._emit = emit
        self._backlog = backlog
        self._tasks = tasks
        self._metrics = metrics
        self._max_per_client = max_per_client
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, dict[str, Replay]] = {}  # sid -> replay id -> replay
        metrics.replays.set_function(lambda: sum(len(replays) for replays in self._running.values()))

    def start(self, sid: str, channel: Channel, start: float, end: float, speed: float) -> str:
        """Begin a replay for a client; returns its id. Raises TooManyReplaysError past REPLAY_MAX_PER_CLIENT."""
        replay = Replay(secrets.token_hex(6), sid, channel, start, end, speed)
        with self._lock:
            mine = self._running.setdefault(sid, {})
            if len(mine) >= self._max_per_client:
                raise TooManyReplaysError(
                    f"{len(mine)} replays are running for you already, at most {self._max_per_client} at once; "
                    "wait for a replay_end or send replay_stop {replay_id}")
            mine[replay.replay_id] = replay
        self._tasks.start(self._run, replay)
        return replay.replay_id

    def stop(self, sid: str, replay_id: str) -> bool:
        """End a client's replay early; returns whether it was running."""
        with self._lock:
            replay = self._running.get(sid, {}).get(replay_id)
        if replay is None:
            return False
        replay.stopped.set()
        return True

    def drop(self, sid: str) -> None:
        """A client disconnected: end its replays."""
        with self._lock:
            replays = self._running.pop(sid, {})
        for replay in replays.values():
            replay.stopped.set()

    def _run(self, replay: Replay) -> None:
        count = 0
        ended: dict[str, object] = {}
        try:
            count, ended = self._stream(replay)
        except Exception:
            self._metrics.task_errors.labels(TaskName.REPLAY).inc()
            log.exception("replay %s of %s failed", replay.replay_id, replay.channel.key)
            ended = {"error": "INTERNAL_ERROR", "message": "the replay failed; it has been logged"}
        finally:
            with self._lock:
                mine = self._running.get(replay.sid, {})
                mine.pop(replay.replay_id, None)
                if not mine:
                    self._running.pop(replay.sid, None)
        if self._backlog(replay.sid) is not None:
            self._emit(REPLAY_END, {"replay_id": replay.replay_id, "count": count, **ended}, to=replay.sid)

    def _stream(self, replay: Replay) -> tuple[int, dict[str, object]]:
        """Send the replay's updates; returns how many were sent and what replay_end says beyond its count."""
        event = replay.channel.policy.event
        count = 0
        after = 0
        epoch = None
        first_at: float | None = None
        began = self._clock()
        while True:
            page = self._recorder.read(replay.channel, after, replay.start, replay.end, PAGE)
            if epoch is None:
                epoch = page.epoch
            elif page.epoch != epoch:
                return count, {"error": "EPOCH_CHANGED",
                               "message": f"the history of {replay.channel.key} started afresh during the replay"}
            for entry in page.entries:
                if replay.speed > 0:
                    if first_at is None:
                        first_at, began = entry.at, self._clock()
                    wait = began + (entry.at - first_at) / replay.speed - self._clock()
                    if wait > 0 and replay.stopped.wait(wait):
                        return count, {"stopped": True}
                if not self._wait_for_reader(replay):
                    return count, {"stopped": True}
                data = json.loads(entry.item)
                data["offset"], data["epoch"] = entry.offset, epoch
                self._emit(REPLAY_DATA, {"replay_id": replay.replay_id, "event": event, "data": data},
                           to=replay.sid)
                count += 1
                if count % YIELD_EVERY == 0:
                    self._tasks.sleep(0)
            if page.next is None:
                return count, {}
            after = page.next

    def _wait_for_reader(self, replay: Replay) -> bool:
        """Wait while the client has REPLAY_BACKLOG packets queued; False when the replay should end."""
        while not replay.stopped.is_set():
            queued = self._backlog(replay.sid)
            if queued is None:
                return False
            if queued <= REPLAY_BACKLOG:
                return True
            self._tasks.sleep(BACKLOG_POLL)
        return False
