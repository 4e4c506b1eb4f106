"""IngestRole: ROLE=ingest. Campaigns for the leader lock; while it leads, streams from the exchange what the
gateways want, and publishes every update once (streaming/cluster/publisher.py).

Standbys wait warm: the symbol catalog is loaded, Redis connected, the pools built with the default symbols
pinned; only the exchange connections wait for the lock. The leader reads the union of the gateways' demand
every DEMAND_POLL_INTERVAL and wants or releases streams on its pools by the difference, so a stream nobody
wants any more (a gateway's clients left, or the gateway died and its demand lapsed) is released after the
pools' grace period (UNSUBSCRIBE_GRACE), as in one process.

A leader that loses the lock stops publishing at once (its lease, and the fence of every publish) and then
leaves the process through ``on_deposed``: a process manager (PM2) starts it again as a standby. That is
simpler, and safer, than taking every exchange connection and buffer back to a clean state in place.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from metrics.collectors import ServiceMetrics
from metrics.labels import TaskName
from streaming.cluster.bus import ClusterRedis, ClusterUnavailable
from streaming.cluster.election import Election
from streaming.cluster.publisher import Publisher
from streaming.core.channels import Channel
from streaming.core.positions import parse_channel_key
from streaming.hub.sources import Supply
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["IngestRole", "DEMAND_POLL_INTERVAL"]

log = logging.getLogger(__name__)

DEMAND_POLL_INTERVAL = 0.25


class IngestRole:
    def __init__(
        self,
        bus: ClusterRedis,
        election: Election,
        publisher: Publisher,
        supply: Supply,
        tasks: TaskRunner,
        metrics: ServiceMetrics,
        on_elected: Callable[[], None],
    ) -> None:
        self._bus = bus
        self.election = election
        self.publisher = publisher
        self._supply = supply
        self._metrics = metrics
        self._on_elected = on_elected
        self._wanted: set[Channel] = set()  # streamed for the gateways now
        self._reported = False
        self._task = PeriodicTask(TaskName.CLUSTER_DEMAND, tasks, self._sync, DEMAND_POLL_INTERVAL,
                                  lambda name: metrics.task_errors.labels(name).inc())

    def elected(self, token: str) -> None:
        """The election's ``on_elected``."""
        self._metrics.is_leader.set(1)
        self._on_elected()
        self._task.start()

    def deposed(self) -> None:
        self._metrics.is_leader.set(0)

    def start(self) -> None:
        self.publisher.start()
        self.election.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._task.stop(timeout)
        self.publisher.stop(timeout)
        self.election.stop(timeout)
        self._metrics.is_leader.set(0)

    def _sync(self) -> float:
        if not self.election.lease_valid():
            return DEMAND_POLL_INTERVAL
        try:
            keys = self._bus.demand()
        except ClusterUnavailable as exc:
            if not self._reported:
                self._reported = True
                log.warning("cluster: %s; the streams stay as they are", exc)
            return DEMAND_POLL_INTERVAL
        self._reported = False
        wanted = {channel for channel in map(parse_channel_key, keys) if channel is not None}
        for channel in sorted(wanted - self._wanted):
            self._supply.want(channel)
        for channel in sorted(self._wanted - wanted):
            self._supply.release(channel)
        self._wanted = wanted
        return DEMAND_POLL_INTERVAL

    def wants(self, channel: Channel) -> bool:
        """Whether some gateway's clients hold the channel."""
        return channel in self._wanted
