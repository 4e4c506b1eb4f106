"""GatewayFeed: ROLE=gateway's supply of channels and the source of a joining client's first updates.

A gateway subscribes in Redis only to the pub/sub channels of the channels its own clients hold, and writes each
message's packet to the channel's room through the frame-once fast path; it parses no JSON per message
(streaming/cluster/wire.py). Per channel it keeps the newest packets it forwarded, with their offsets: the
snapshot a new subscriber gets, and what a returning client recovers (``since``).

Exactly once and in order, per channel (streaming/cluster/sequencer.py): a message at or below the last offset
forwarded is dropped; one further on than the next is preceded by the missing updates, read from the channel's
history in Redis. When a channel is first wanted here, the feed subscribes, waits for Redis to confirm, and only
then reads the history's newest entries as its starting point: a message published in between is held back
until then, and so is not lost or sent twice. After the pub/sub connection broke, every channel is resubscribed
and caught up from the history the same way. All of it happens under the fan-out's lock, like a join, so a
client joining meanwhile sees each update once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cache.history_store import HistoryUnavailable, RedisHistory
from metrics.collectors import ServiceMetrics
from metrics.labels import FeedResult, TaskName
from streaming.cluster import keys
from streaming.cluster.bus import ClusterRedis, ClusterUnavailable
from streaming.cluster.sequencer import Verdict, decide
from streaming.cluster.wire import NOTICE, MalformedMessage, Message, parse_message
from streaming.core.channels import Channel, Kind
from streaming.core.history import ChannelHistory, Entry, Position, Recovery, Retention
from streaming.core.packets import packet, recovered
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["GatewayFeed"]

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 2.0  # how long a join waits for Redis to confirm a new subscription
READ_TIMEOUT = 0.05  # the reader's wait for a message; subscriptions asked for meanwhile go out after it
RETRY_INTERVAL = 1.0  # between attempts to reconnect the pub/sub connection
SWEEP_INTERVAL = 0.5
PREPARED_GRACE = 5.0  # a channel subscribed for a join that never completed is dropped after this long
KEEPALIVE_TOPIC = "__gateway__"  # always subscribed: redis-py reads nothing from a connection without one

EmitPackets = Callable[[Sequence[str], str, bool], tuple[int, int]]  # (packets, room, coalesce) -> (direct, queued)


@dataclass(eq=False)
class _Held:
    """One channel this gateway is subscribed to."""

    channel: Channel
    topic: str
    history: ChannelHistory[str] | None = None  # the packets forwarded; None until the start is known
    pending: list[Message] | None = field(default_factory=list)  # messages held back while the start is read
    ready: threading.Event = field(default_factory=threading.Event)  # the start is known (or could not be)
    subscribed: threading.Event = field(default_factory=threading.Event)
    resync: bool = False  # subscribed again after the connection broke: catch up from the history
    wanted: bool = False
    release_at: float | None = None


class GatewayFeed:
    cold_fallback = False  # a missing snapshot is not fetched over REST here: the leader's stream brings it

    def __init__(
        self,
        bus: ClusterRedis,
        history: RedisHistory,
        lock: threading.Lock,
        emit_packets: EmitPackets,
        audience: Callable[[Channel], int],
        retention: Mapping[Kind, Retention],
        recovery_limit: int,
        grace: float,
        max_age: float,
        tasks: TaskRunner,
        metrics: ServiceMetrics,
        on_deliveries: Callable[[int, int], None] = lambda direct, queued: None,
        on_demand: Callable[[], None] = lambda: None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._history = history
        self._lock = lock  # the fan-out's
        self._emit_packets = emit_packets
        self._audience = audience
        self._retention = retention
        self.recovery_limit = recovery_limit
        self._kept = recovery_limit + 200  # packets kept per channel: one recovery's worth and a margin
        self._grace = grace
        self._max_age = max_age
        self._tasks = tasks
        self._metrics = metrics
        self._on_deliveries = on_deliveries
        self._on_demand = on_demand  # the set of channels changed: tell the cluster now
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._prefix = keys.topic_prefix(bus.db)
        self._held: dict[str, _Held] = {}  # channel key -> held
        self._state_lock = threading.Lock()  # _held and _commands
        self._commands: list[tuple[str, str]] = []  # ("subscribe" | "unsubscribe", topic) for the reader
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self.connected = False
        self.error = "not connected yet"
        self._results = {result: metrics.feed_updates.labels(result) for result in FeedResult}
        self._sweeper = PeriodicTask(TaskName.CLUSTER_FEED, tasks, self._sweep, SWEEP_INTERVAL,
                                     lambda name: metrics.task_errors.labels(name).inc())

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._stopped.clear()
        self._tasks.start(self._read_loop)
        self._sweeper.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._sweeper.stop(timeout)
        self._stopped.wait(timeout)

    # -- Supply -----------------------------------------------------------------------------------------------
    def prepare(self, channels: Sequence[Channel]) -> None:
        """Subscribe to the channels not held yet and read where each one stands, before a client joins them."""
        fresh: list[_Held] = []
        waiting: list[_Held] = []
        with self._state_lock:
            for channel in channels:
                held = self._held.get(channel.key)
                if held is None:
                    held = self._held[channel.key] = _Held(channel, self._prefix + channel.key)
                    self._commands.append(("subscribe", held.topic))
                    fresh.append(held)
                elif not held.ready.is_set():
                    waiting.append(held)
                if not held.wanted:
                    held.release_at = self._monotonic() + PREPARED_GRACE
        if fresh:
            self._on_demand()
        for held in fresh:
            held.subscribed.wait(SUBSCRIBE_TIMEOUT)
            self._start_from_history(held)
        for held in waiting:
            held.ready.wait(SUBSCRIBE_TIMEOUT * 2)

    def want(self, channel: Channel) -> None:
        with self._state_lock:
            held = self._held.get(channel.key)
            if held is not None:
                held.wanted, held.release_at = True, None

    def release(self, channel: Channel, grace: float | None = None) -> None:
        with self._state_lock:
            held = self._held.get(channel.key)
            if held is not None:
                held.wanted = False
                held.release_at = self._monotonic() + (self._grace if grace is None else grace)

    def channels(self) -> list[str]:
        """The keys of every channel subscribed here (its clients' demand, releases in their grace included)."""
        with self._state_lock:
            return sorted(self._held)

    def _sweep(self) -> float:
        now = self._monotonic()
        with self._state_lock:
            gone = [key for key, held in self._held.items()
                    if not held.wanted and held.release_at is not None and held.release_at <= now]
            for key in gone:
                self._commands.append(("unsubscribe", self._held.pop(key).topic))
        if gone:
            self._on_demand()
        return SWEEP_INTERVAL

    # -- Source -----------------------------------------------------------------------------------------------
    def position(self, channel: Channel) -> Position | None:
        history = self._history_of(channel)
        return history.position if history is not None else None

    def recover(self, channel: Channel, since: Position, limit: int) -> Recovery[str]:
        history = self._history_of(channel)
        if history is None:
            return Recovery(False, reason="the channel's history is unavailable (Redis does not answer)")
        return history.since(since, limit)

    def send_recovered(self, sid: str, channel: Channel, recovery: Recovery[str]) -> int:
        self._emit_packets([recovered(entry.item) for entry in recovery.entries], sid, False)
        return len(recovery.entries)

    def send_snapshot(self, sid: str, channel: Channel) -> bool:
        history = self._history_of(channel)
        newest = history.newest if history is not None else None
        if newest is None or self._wall_clock() - newest.at > self._max_age:
            return False
        self._emit_packets([newest.item], sid, False)
        return True

    def _history_of(self, channel: Channel) -> ChannelHistory[str] | None:
        held = self._held.get(channel.key)
        return held.history if held is not None else None

    # -- where a channel starts -------------------------------------------------------------------------------
    def _start_from_history(self, held: _Held) -> None:
        """Read the channel's newest stored updates (after the subscription took effect), then let the messages
        held back meanwhile through the sequencer."""
        stored = None
        try:
            stored = self._history.newest(held.channel.key, self._kept)
        except HistoryUnavailable as exc:
            log.warning("cluster: %s; %s starts from its next update", exc, held.channel.key)
        with self._lock:
            if stored is not None:
                epoch, offset, entries = stored
                held.history = self._new_history(held.channel, epoch, offset, [
                    Entry(entry.offset, entry.at, packet(held.channel.policy.event, entry.item, entry.offset, epoch))
                    for entry in entries])
            pending, held.pending = held.pending or [], None
            for message in pending:
                self._accept(held, message)
        held.ready.set()

    def _new_history(self, channel: Channel, epoch: str, offset: int,
                     entries: Sequence[Entry[str]] = ()) -> ChannelHistory[str]:
        kept = self._retention[channel.kind]
        entries = [entry for entry in entries if entry.offset <= offset]
        if entries and entries[-1].offset != offset:  # only a run that ends at the offset is a usable tail
            entries = []
        return ChannelHistory(epoch, Retention(min(kept.max_items, self._kept), kept.max_age), self._wall_clock,
                              offset, entries)

    # -- the reader -------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        pubsub: Any = None
        try:
            while not self._stopping.is_set():
                if pubsub is None:
                    pubsub = self._connect()
                    if pubsub is None:
                        self._stopping.wait(RETRY_INTERVAL)
                        continue
                try:
                    self._send_commands(pubsub)
                    message = pubsub.get_message(timeout=READ_TIMEOUT)
                    if message is not None:
                        self._handle(message)
                except (redis.RedisError, OSError) as exc:
                    self._down(f"reading pub/sub from Redis at {self._bus.address} failed: {exc}")
                    _close(pubsub)
                    pubsub = None
                except Exception:  # a bug must not end the reader: every channel would go silent
                    log.exception("cluster: handling a pub/sub message failed; continuing")
                    self._metrics.task_errors.labels(TaskName.CLUSTER_FEED).inc()
        finally:
            _close(pubsub)
            self._stopped.set()

    def _connect(self) -> Any:
        """A pub/sub connection subscribed to every channel held (each caught up once confirmed)."""
        with self._state_lock:
            self._commands.clear()
            topics = [held.topic for held in self._held.values()]
            for held in self._held.values():
                held.subscribed.clear()
                held.resync = held.history is not None
        pubsub = None
        try:
            pubsub = self._bus.pubsub()
            pubsub.subscribe(self._prefix + KEEPALIVE_TOPIC, *topics)
        except (redis.RedisError, OSError, ClusterUnavailable) as exc:
            self._down(f"subscribing in Redis at {self._bus.address} failed: {exc}")
            _close(pubsub)
            return None
        if not self.connected:
            log.info("cluster: pub/sub connected to Redis at %s (%d channels)", self._bus.address, len(topics))
        self.connected, self.error = True, ""
        return pubsub

    def _down(self, error: str) -> None:
        if self.connected or self.error != error:
            log.warning("cluster: %s; reconnecting every %.0fs (clients get no updates meanwhile)", error,
                        RETRY_INTERVAL)
        self.connected, self.error = False, error

    def _send_commands(self, pubsub: Any) -> None:
        with self._state_lock:
            commands, self._commands = self._commands, []
        for command, topic in commands:
            (pubsub.subscribe if command == "subscribe" else pubsub.unsubscribe)(topic)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        topic = message.get("channel")
        if isinstance(topic, bytes):
            topic = topic.decode()
        if not isinstance(topic, str) or not topic.startswith(self._prefix):
            return
        held = self._held.get(topic[len(self._prefix):])
        if held is None:
            return
        if kind == "subscribe":
            if held.resync:
                held.resync = False
                self._catch_up(held)
            held.subscribed.set()
            return
        if kind != "message":
            return
        try:
            parsed = parse_message(message["data"])
        except MalformedMessage as exc:
            log.warning("cluster: dropped a malformed message on %s: %s", topic, exc)
            return
        # the hop: from the leader taking the update to this gateway reading it (before its own fan-out)
        latency = max(0.0, self._wall_clock() - parsed.published_us / 1e6)
        self._metrics.publish_latency.observe(latency)
        self._metrics.pubsub_lag.set(latency)
        with self._lock:
            if parsed.offset == NOTICE:  # not an update: no position, nothing to keep
                if self._audience(held.channel) > 0:
                    self._on_deliveries(*self._emit_packets([parsed.packet], held.channel.room, False))
                return
            if held.pending is not None:
                held.pending.append(parsed)
                return
            self._accept(held, parsed)

    def _catch_up(self, held: _Held) -> None:
        """After a reconnection: forward what was published while the connection was down."""
        try:
            stored = self._history.position(held.channel.key)
        except HistoryUnavailable as exc:
            log.warning("cluster: %s", exc)
            return
        if stored is None:
            return
        epoch, offset = stored
        with self._lock:
            history = held.history
            if history is None:
                return
            if history.epoch != epoch:
                held.history = self._new_history(held.channel, epoch, 0)
                history = held.history
            if offset > history.offset:
                self._fill(held, history.offset + 1, offset)

    # -- sequencing (the fan-out's lock is held) --------------------------------------------------------------
    def _accept(self, held: _Held, message: Message) -> None:
        history = held.history
        step = decide(history.epoch if history else None, history.offset if history else 0, message.epoch,
                      message.offset)
        if step.verdict is Verdict.NEW_EPOCH:
            held.history = history = self._new_history(held.channel, message.epoch, 0)
            step = decide(history.epoch, 0, message.epoch, message.offset)
        assert history is not None
        if step.verdict is Verdict.REPEAT:
            self._results[FeedResult.REPEAT].inc()
            return
        if step.verdict is Verdict.GAP:
            self._fill(held, step.missing_from, step.missing_to)
            history = held.history
            assert history is not None
            if history.offset != message.offset - 1:  # not all of it is stored any more
                self._results[FeedResult.LOST].inc(message.offset - 1 - history.offset)
                held.history = history = self._new_history(held.channel, message.epoch, message.offset - 1)
        self._forward(held, history, message.packet, message.published_us / 1e6)
        self._results[FeedResult.FORWARDED].inc()

    def _fill(self, held: _Held, first: int, last: int) -> None:
        """Forward the channel's updates ``first`` to ``last`` from its history (at most what is kept)."""
        history = held.history
        assert history is not None
        first = max(first, last - self._kept + 1)
        try:
            entries, _ = self._history.read(held.channel.key, first - 1, 0.0, float("inf"), last - first + 1)
        except HistoryUnavailable as exc:
            log.warning("cluster: %s; %d updates of %s are lost", exc, last - first + 1, held.channel.key)
            return
        if entries and entries[0].offset != history.offset + 1:  # the ones before these are gone
            self._results[FeedResult.LOST].inc(entries[0].offset - history.offset - 1)
            held.history = history = self._new_history(held.channel, history.epoch, entries[0].offset - 1)
        event = held.channel.policy.event
        for entry in entries:
            if entry.offset != history.offset + 1:
                break
            self._forward(held, history, packet(event, entry.item, entry.offset, history.epoch), entry.at)
            self._results[FeedResult.FILLED].inc()

    def _forward(self, held: _Held, history: ChannelHistory[str], text: str, at: float) -> None:
        history.append(text, at)
        channel = held.channel
        if self._audience(channel) > 0:
            self._on_deliveries(*self._emit_packets([text], channel.room, channel.policy.coalesce))


def _close(pubsub: Any) -> None:
    if pubsub is None:
        return
    try:
        pubsub.close()
    except (redis.RedisError, OSError):
        pass

