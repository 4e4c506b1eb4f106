"""Recorder: every update of every channel gets its position (offset, epoch) and goes into the channel's history,
in memory at once and in Redis Streams in batches, like the ticker cache's writes.

``record`` never blocks and never does I/O: the fan-out calls it under its lock for each update it passes. A
background task appends what was recorded to Redis every FLUSH_INTERVAL. The history lives in one store at a
time: Redis when it answers (a new process continues each channel's epoch and offsets from it), else memory
only. Every switch between them starts every channel afresh, with a new epoch, so a position from one store is
never taken for a position in the other; so does a channel whose history Redis lost (flushed, evicted). A write
that only timed out is not a switch: its updates are written again (appends are idempotent) until Redis has not
answered for TIMEOUT_GRACE seconds.

Recoveries are served from memory, which holds each channel's newest updates whatever the store: at least
RECOVERY_MAX_UPDATES of them, and on start-up the newest ones stored in Redis. Reads of the history
(``/history``, replays) come from Redis, and from memory for what is not written yet.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

from cache.history_store import ChannelAppend, HistoryUnavailable, RedisHistory
from metrics.collectors import ServiceMetrics
from metrics.labels import HistoryOperation, TaskName
from streaming.core.channels import Channel, Kind
from streaming.core.history import ChannelHistory, Entry, History, Page, Position, Recovery, Retention
from streaming.core.positions import parse_channel_key
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["HistoryStore", "Recorder"]

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1
REDIS_RETRY_INTERVAL = 2.0
TRIM_INTERVAL = 5.0
# Recorded updates that may wait for Redis; past this Redis is too slow to keep up and the history switches to
# memory, as if Redis were down.
MAX_PENDING = 200_000
# Updates kept in memory beyond what one recovery may send, while Redis holds the history (a margin for the
# updates recorded while a recovery is prepared).
RECOVERY_MARGIN = 200
# Histories found lost this many times within LOSS_WINDOW seconds: another process writes the same keys.
LOSSES_OF_A_SECOND_WRITER = 3
LOSS_WINDOW = 60.0
# A write or ping that timed out may only mean a slow Redis or a busy event loop (a deploy's clients all
# reconnecting at once make it so: the answer was there, but read too late). Its updates stay queued and are
# written again until Redis has given nothing but timeouts for this long; only then does the history go to
# memory, which starts every channel with a new epoch, so that no client can recover across it.
TIMEOUT_GRACE = 30.0


class HistoryStore(StrEnum):
    REDIS = "redis"
    MEMORY = "memory"


class Recorder:
    def __init__(
        self,
        redis: RedisHistory | None,
        retention: Mapping[Kind, Retention],
        memory_items: int,
        recovery_limit: int,
        tasks: TaskRunner,
        metrics: ServiceMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._retention = retention
        self._memory_items = memory_items
        self.recovery_limit = recovery_limit
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.store = HistoryStore.MEMORY
        self._history: History[Channel, str] = History(self._memory_retention, clock)
        self._pending: dict[Channel, list[Entry[str]]] = {}
        self._pending_count = 0
        self._fresh: set[Channel] = set()  # epochs begun here and not yet written: their stream is replaced
        self._next_retry = 0.0
        self._next_trim = 0.0
        self._redis_error = "not connected yet"
        self._reported_down = False
        self._last_contact = 0.0
        self._timing_out_since: float | None = None  # when the current run of timed-out writes began
        self._connected_before = False
        self._losses: list[float] = []  # when Redis was found not to hold a channel's history
        self._reported_writer = False
        self._task = PeriodicTask(
            TaskName.HISTORY_WRITER, tasks, self._round, FLUSH_INTERVAL,
            lambda name: metrics.task_errors.labels(name).inc(),
        )
        metrics.history_in_redis.set_function(lambda: 1 if self.store is HistoryStore.REDIS else 0)
        metrics.history_pending.set_function(lambda: self._pending_count)

    def _memory_retention(self, channel: Channel) -> Retention:
        kept = self._retention[channel.kind]
        cap = self._memory_items if self.store is HistoryStore.MEMORY else self.recovery_limit + RECOVERY_MARGIN
        return Retention(min(kept.max_items, max(cap, self.recovery_limit)), kept.max_age)

    # -- the hot path -----------------------------------------------------------------------------------------
    def record(self, channel: Channel, wire: dict, at: float) -> Position:
        """Append an update (its wire form, its event time in seconds) to its channel; returns its position."""
        item = json.dumps(wire, separators=(",", ":"))
        with self._lock:
            history = self._channel(channel)
            entry = history.append(item, at)
            if self.store is HistoryStore.REDIS:
                self._pending.setdefault(channel, []).append(entry)
                self._pending_count += 1
            return Position(entry.offset, history.epoch)

    def position(self, channel: Channel) -> Position:
        """The channel's position now (offset 0 before its first update)."""
        with self._lock:
            return self._channel(channel).position

    def newest(self, channel: Channel) -> str | None:
        """The newest update recorded in the channel's history (its wire JSON), if it holds one."""
        with self._lock:
            history = self._history.get(channel)
            newest = history.newest if history is not None else None
            return newest.item if newest is not None else None

    def restart(self, channel: Channel) -> Position:
        """The channel's history has a hole it cannot fill: start it afresh, with a new epoch."""
        with self._lock:
            position = self._history.restart(channel)
            if self.store is HistoryStore.REDIS:
                self._fresh.add(channel)
                self._pending_count -= len(self._pending.pop(channel, ()))
            return position

    def recover(self, channel: Channel, since: Position, limit: int) -> Recovery[str]:
        """Every update after ``since``, from memory, if they are all held and at most ``limit``."""
        with self._lock:
            return self._channel(channel).since(since, limit)

    def _channel(self, channel: Channel) -> ChannelHistory[str]:
        """The channel's history, begun now if it has none (the lock is held)."""
        history = self._history.get(channel)
        if history is None:
            history = self._history.channel(channel)
            if self.store is HistoryStore.REDIS:
                self._fresh.add(channel)
        return history

    # -- reads ------------------------------------------------------------------------------------------------
    def read(self, channel: Channel, after: int, start: float, end: float, limit: int) -> Page[str]:
        """Up to ``limit`` updates after offset ``after`` with event times from ``start`` to ``end`` (seconds),
        oldest first: from Redis, then from memory for the newest not written yet."""
        with self._lock:
            history = self._channel(channel)
            epoch = history.epoch
            from_redis = self.store is HistoryStore.REDIS and channel not in self._fresh
        entries: list[Entry[str]] = []
        more = False
        if from_redis:
            assert self._redis is not None
            try:
                entries, more = self._redis.read(channel.key, after, start, end, limit)
            except HistoryUnavailable as exc:
                self._metrics.history_errors.labels(HistoryOperation.READ).inc()
                log.warning("history: %s; reading from memory", exc)
        if not more:  # then what memory holds beyond it (not written yet)
            with self._lock:
                history = self._channel(channel)
                if history.epoch != epoch:  # started afresh meanwhile
                    return history.page(after, start, end, limit)
                remaining = limit - len(entries)
                rest = history.page(entries[-1].offset if entries else after, start, end, max(remaining, 1))
            if remaining:
                entries += rest.entries
                more = rest.next is not None
            else:
                more = bool(rest.entries)
        return Page(epoch, tuple(entries), entries[-1].offset if more and entries else None)

    def status(self) -> tuple[str, str]:
        """``(store, message)`` for /health."""
        if self._redis is None:
            return HistoryStore.MEMORY, "history in memory (REDIS_ENABLED=false)"
        if self.store is HistoryStore.REDIS:
            if self._timing_out_since is not None:
                return HistoryStore.REDIS, (f"history in Redis Streams at {self._redis.address}; its writes time "
                                            f"out (for {self._monotonic() - self._timing_out_since:.0f}s), and are "
                                            "sent again")
            return HistoryStore.REDIS, f"history in Redis Streams at {self._redis.address}"
        return HistoryStore.MEMORY, (f"history in memory: Redis at {self._redis.address} unavailable "
                                     f"({self._redis_error}); retrying")

    # -- the writer task --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Continue the histories stored in Redis (if it answers), then write every FLUSH_INTERVAL."""
        if self._redis is None:
            return
        self._connect()
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._redis is None:
            return
        if self._task.stop(timeout) and self.store is HistoryStore.REDIS:
            self.flush()
        self._redis.close()

    def _round(self) -> None:
        if self.store is HistoryStore.MEMORY:
            if self._monotonic() >= self._next_retry:
                self._connect()
            return
        if not self.flush() and self._monotonic() - self._last_contact >= REDIS_RETRY_INTERVAL:
            try:  # idle: a ping notices an outage as soon as a write would
                self._redis.ping()
                self._answered()
            except HistoryUnavailable as exc:
                self._failed(exc, HistoryOperation.PING)
        if self.store is HistoryStore.REDIS and self._monotonic() >= self._next_trim:
            self._next_trim = self._monotonic() + TRIM_INTERVAL
            self._trim()

    def _connect(self) -> bool:
        """Switch to Redis if it answers: continue what it holds on start-up, start afresh after an outage."""
        assert self._redis is not None
        try:
            self._redis.ping()
            # Only a first connection continues what Redis holds: after an outage the updates that were waiting
            # to be written are lost, and their offsets were sent to clients already.
            stored = self._redis.positions() if not self._connected_before and not self._history.keys() else {}
            adopted = {}
            for key, (epoch, offset) in stored.items():
                channel = parse_channel_key(key)
                if channel is not None:
                    adopted[channel] = (epoch, offset, self._redis.tail(key, self.recovery_limit + RECOVERY_MARGIN))
        except HistoryUnavailable as exc:
            self._down(exc, HistoryOperation.PING)
            return False
        self._connected_before = True
        with self._lock:
            self.store = HistoryStore.REDIS
            self._history.restart_all()  # recorded in memory meanwhile: not in Redis, so not continued
            self._fresh.clear()
            for channel, (epoch, offset, tail) in adopted.items():
                self._history.adopt(channel, epoch, offset, tail)
        self._reported_down = False
        self._timing_out_since = None
        self._last_contact = self._monotonic()
        log.info("history: recording in Redis Streams at %s (%d stored channel histories continued)",
                 self._redis.address, len(adopted))
        return True

    def flush(self) -> int:
        """Append what was recorded since the last flush to Redis; returns how many updates were written."""
        assert self._redis is not None
        with self._lock:
            backlog = self._pending_count
            if backlog <= MAX_PENDING:
                pending, self._pending, self._pending_count = self._pending, {}, 0
                fresh = self._fresh
                # subscribed or read but nothing recorded yet: still fresh at the next flush
                self._fresh = {channel for channel in fresh if channel not in pending}
                batches = {
                    channel.key: ChannelAppend(self._history.channel(channel).epoch, channel in fresh,
                                               self._retention[channel.kind].max_items, tuple(entries))
                    for channel, entries in pending.items()
                }
        if backlog > MAX_PENDING:
            self._down(HistoryUnavailable(f"Redis at {self._redis.address} is too slow: {backlog} updates "
                                          "waiting to be written"), HistoryOperation.WRITE)
            return 0
        if not batches:
            return 0
        try:
            lost = self._redis.append(batches)
        except HistoryUnavailable as exc:
            if self._failed(exc, HistoryOperation.WRITE):
                self._requeue(batches, pending)
            return 0
        self._answered()
        written = sum(len(batch.entries) for key, batch in batches.items() if key not in lost)
        self._metrics.history_writes.inc(written)
        if lost:
            self._note_losses(len(lost))
        for key in sorted(lost):
            channel = parse_channel_key(key)
            if channel is None:
                continue
            self._metrics.history_errors.labels(HistoryOperation.LOST).inc()
            log.warning("history: Redis no longer holds the history of %s (flushed or evicted); it starts again "
                        "with a new epoch", key)
            with self._lock:
                self._history.restart(channel)
                self._fresh.add(channel)
                self._pending_count -= len(self._pending.pop(channel, ()))
        return written

    def _requeue(self, batches: Mapping[str, ChannelAppend], channels: Iterable[Channel]) -> None:
        """Put a write that timed out back in front of what was recorded since, to be sent again; not for a
        channel started afresh meanwhile (its entries belong to an epoch that is over)."""
        with self._lock:
            if self.store is not HistoryStore.REDIS:
                return
            for channel in channels:
                batch = batches[channel.key]
                history = self._history.get(channel)
                if history is None or history.epoch != batch.epoch:
                    continue
                self._pending[channel] = [*batch.entries, *self._pending.get(channel, ())]
                self._pending_count += len(batch.entries)
                if batch.fresh:
                    self._fresh.add(channel)

    def _answered(self) -> None:
        """Redis answered a write or a ping."""
        self._last_contact = self._monotonic()
        if self._timing_out_since is not None:
            assert self._redis is not None
            log.info("history: Redis at %s answers again after %.1fs of timed-out writes; what they held is "
                     "written, every channel goes on in its epoch", self._redis.address,
                     self._last_contact - self._timing_out_since)
            self._timing_out_since = None

    def _failed(self, exc: HistoryUnavailable, operation: HistoryOperation) -> bool:
        """A write or ping failed: True when it only timed out and Redis has answered within TIMEOUT_GRACE (try
        again); else Redis is taken for down (False)."""
        now = self._monotonic()
        if exc.timed_out and self.store is HistoryStore.REDIS:
            if self._timing_out_since is None:
                self._timing_out_since = now
                log.warning("history: %s; sending it again (Redis may only be slow, or the event loop busy); "
                            "recording in memory if Redis does not answer within %.0fs", exc, TIMEOUT_GRACE)
            if now - self._timing_out_since < TIMEOUT_GRACE:
                self._metrics.history_errors.labels(operation).inc()
                return True
        self._down(exc, operation)
        return False

    def _note_losses(self, count: int) -> None:
        """Histories lost again and again mean another process records into the same keys: say so once."""
        now = self._monotonic()
        self._losses = [at for at in self._losses if now - at < LOSS_WINDOW] + [now] * count
        if len(self._losses) >= LOSSES_OF_A_SECOND_WRITER and not self._reported_writer:
            self._reported_writer = True
            assert self._redis is not None
            log.error("history: Redis at %s lost %d channel histories within %.0fs: another process is probably "
                      "recording into the same Redis database; give each service its own REDIS_DB (histories "
                      "restart with a new epoch each time, so clients cannot recover)", self._redis.address,
                      len(self._losses), LOSS_WINDOW)

    def _trim(self) -> None:
        assert self._redis is not None
        now = self._clock()
        by_kind: dict[Kind, list[str]] = {}
        with self._lock:
            for channel in self._history.keys():
                by_kind.setdefault(channel.kind, []).append(channel.key)
        try:
            for kind, keys in by_kind.items():
                self._redis.trim_older_than(keys, now - self._retention[kind].max_age)
        except HistoryUnavailable as exc:
            self._metrics.history_errors.labels(HistoryOperation.TRIM).inc()
            log.warning("history: %s", exc)

    def _down(self, exc: Exception, operation: HistoryOperation) -> None:
        """Redis failed: record in memory from now on, every channel afresh; retry Redis later."""
        self._metrics.history_errors.labels(operation).inc()
        self._next_retry = self._monotonic() + REDIS_RETRY_INTERVAL
        self._timing_out_since = None
        self._redis_error = str(exc).split(": ", 1)[-1][:200]
        with self._lock:
            if self.store is HistoryStore.REDIS:
                self._history.restart_all()
            self.store = HistoryStore.MEMORY
            self._pending, self._pending_count = {}, 0
            self._fresh.clear()
        if not self._reported_down:  # one line per outage, not per retry
            self._reported_down = True
            log.warning("history: %s; recording in memory (every channel starts a new epoch), retrying Redis "
                        "every %.0fs", exc, REDIS_RETRY_INTERVAL)
