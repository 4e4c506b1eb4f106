"""Publisher: ROLE=ingest's way out for every update the fan-out passes, while this node leads.

``offer`` runs in the fan-out under its lock and does no I/O: it queues the update. A background task sends
what is queued in one pipelined round trip of PUBLISH scripts (streaming/cluster/scripts.py), each fenced by
the leader's token; so a burst costs one round trip, and a quiet stream one per update. Redis numbers each
channel's updates as it appends them, so a new leader simply carries on a channel's offsets, and an update
offered twice (by two leaders around a take-over, or a retry after a broken connection) is refused as a repeat
by the channel's order value instead of being published twice.

A batch that cannot be sent is retried while the lease lasts; past it the updates are dropped (counted): the
leader after this one fills a trade gap from Binance REST, and state kinds are superseded by their next update.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from metrics.collectors import ServiceMetrics
from metrics.labels import PublishResult, TaskName
from streaming.cluster import scripts
from streaming.cluster.bus import ClusterRedis, ClusterUnavailable, Outgoing
from streaming.cluster.election import Election
from streaming.core.channels import Kind
from streaming.core.history import new_epoch
from streaming.core.models import Model
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["Publisher", "MAX_BATCH", "MAX_QUEUED"]

log = logging.getLogger(__name__)

MAX_BATCH = 500  # updates per round trip
MAX_QUEUED = 100_000  # past this Redis cannot keep up: the oldest are dropped (and counted)
RETRY_DELAY = 0.1
IDLE = 1.0


class Publisher:
    def __init__(self, bus: ClusterRedis, election: Election, max_items: Mapping[Kind, int], tasks: TaskRunner,
                 metrics: ServiceMetrics, wall_clock: Callable[[], float] = time.time) -> None:
        self._bus = bus
        self._election = election
        self._max_items = max_items
        self._metrics = metrics
        self._wall_clock = wall_clock
        self._queue: deque[Outgoing] = deque()
        self._lock = threading.Lock()
        self._results = {result: metrics.published.labels(result) for result in PublishResult}
        self._task = PeriodicTask(TaskName.CLUSTER_PUBLISHER, tasks, self._round, IDLE,
                                  lambda name: metrics.task_errors.labels(name).inc())
        self._reported = False

    def offer(self, update: Model, wire: dict) -> None:
        """Queue an update (its wire form without a position) for publishing; never blocks."""
        channel = update.channel
        outgoing = Outgoing(channel.key, channel.policy.event, json.dumps(wire, separators=(",", ":")),
                            update.event_time, update.order, self._max_items[channel.kind],
                            int(self._wall_clock() * 1e6))
        self._queue_one(outgoing)

    def _queue_one(self, outgoing: Outgoing) -> None:
        with self._lock:
            self._queue.append(outgoing)
            overflow = len(self._queue) - MAX_QUEUED
            for _ in range(max(0, overflow)):
                self._queue.popleft()
        if overflow > 0:
            self._results[PublishResult.DROPPED].inc(overflow)
        self._task.wake()

    def notice(self, event: str, payload: dict, room: str) -> None:
        """Queue a notice for a channel's room (its key), in order with the channel's updates."""
        self._queue_one(Outgoing(room, event, json.dumps(payload, separators=(",", ":")), 0, 0, 0,
                                 int(self._wall_clock() * 1e6), notice=True))

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._task.stop(timeout)
        if self._election.lease_valid():
            self._round()  # what the fan-out passed before the stop still goes out

    def _round(self) -> float:
        while True:
            with self._lock:
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            if not batch:
                return IDLE
            if not self._send(batch):
                return RETRY_DELAY

    def _send(self, batch: list[Outgoing]) -> bool:
        """Publish a batch; False when it must be retried (it was put back first)."""
        token = self._election.token
        if token is None or not self._election.lease_valid():
            self._results[PublishResult.DROPPED].inc(len(batch))
            return True
        try:
            results = self._bus.publish(token, batch, new_epoch())
        except ClusterUnavailable as exc:
            if not self._reported:
                self._reported = True
                log.warning("cluster: %s; retrying while this node's lease lasts", exc)
            with self._lock:
                self._queue.extendleft(reversed(batch))
            return False
        self._reported = False
        for result in results:
            if result == scripts.FENCED:
                self._results[PublishResult.FENCED].inc()
            elif result == scripts.REPEAT:
                self._results[PublishResult.REPEAT].inc()
            elif result == scripts.FAILED:
                self._results[PublishResult.FAILED].inc()
            else:
                self._results[PublishResult.PUBLISHED].inc()
        if scripts.FENCED in results:
            self._election.depose("a publish was fenced: another node holds the leader lock")
        failed = [update.channel for update, result in zip(batch, results) if result == scripts.FAILED]
        for channel in sorted(set(failed)):
            log.error("cluster: the stored history of %s disagrees with its position; it starts again with a "
                      "new epoch", channel)
            self._restart(channel)
        return True

    def _restart(self, channel: str) -> None:
        try:
            self._bus.restart(channel)
        except ClusterUnavailable as exc:
            log.warning("cluster: %s", exc)
