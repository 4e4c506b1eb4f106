"""Membership: each node's heartbeat in Redis (and a gateway's demand with it), and the cluster as this node
sees it, for /stats and /health.

Every HEARTBEAT_INTERVAL a node writes its state under ``cluster:node:<id>`` with a TTL of CLUSTER_NODE_TTL; a
gateway also rewrites the set of channels its clients want, ``cluster:demand:<id>``, with the same TTL, and at
once when that set changes. A node that dies stops refreshing both: it drops out of the view, and the leader
stops streaming its demand, within the TTL. Reading the view back also notices leader changes (a new term).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from metrics.collectors import ServiceMetrics
from metrics.labels import TaskName
from streaming.cluster.bus import ClusterRedis, ClusterUnavailable
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["Membership", "HEARTBEAT_INTERVAL"]

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0


class Membership:
    def __init__(
        self,
        bus: ClusterRedis,
        node: str,
        ttl: float,
        state: Callable[[], dict[str, Any]],
        tasks: TaskRunner,
        metrics: ServiceMetrics,
        demand: Callable[[], list[str]] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self.node = node
        self._ttl = ttl
        self._state = state
        self._demand = demand  # a gateway's wanted channel keys; None on an ingestor
        self._metrics = metrics
        self._wall_clock = wall_clock
        self.leader: str | None = None  # the leader's token, as last read (None: nobody leads)
        self._last_leader: str | None = None  # the last leader seen
        self.nodes: list[dict[str, Any]] = []  # every live node's heartbeat, as last read
        self.error = "not connected yet"
        self.read_at = 0.0
        self._reported = False
        self._task = PeriodicTask(TaskName.CLUSTER_HEARTBEAT, tasks, self._round, HEARTBEAT_INTERVAL,
                                  lambda name: metrics.task_errors.labels(name).inc())

    def start(self) -> None:
        self._task.start()

    def wake(self) -> None:
        """Send the heartbeat (and the demand) now: the demand changed."""
        self._task.wake()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop, and leave the cluster at once (demand included) rather than at the TTL."""
        self._task.stop(timeout)
        try:
            self._bus.forget(self.node)
        except ClusterUnavailable as exc:
            log.warning("cluster: %s; this node's heartbeat lapses by itself", exc)

    def _round(self) -> float:
        state = dict(self._state(), node=self.node, at=round(self._wall_clock(), 3))
        try:
            self._bus.heartbeat(self.node, state, self._ttl, self._demand() if self._demand else None)
            leader = self._bus.leader()
            self.nodes = self._bus.nodes()
        except ClusterUnavailable as exc:
            self.error = str(exc)
            if not self._reported:
                self._reported = True
                log.warning("cluster: %s; retrying every %.0fs", exc, HEARTBEAT_INTERVAL)
            return HEARTBEAT_INTERVAL
        self._reported, self.error, self.read_at = False, "", self._wall_clock()
        if leader is not None and leader != self._last_leader:
            if self._last_leader is not None:  # the first one seen is no change
                self._metrics.leader_changes.inc()
            self._last_leader = leader
        self.leader = leader
        return HEARTBEAT_INTERVAL

    def view(self) -> dict[str, Any]:
        """The cluster for /stats and /health: the leader and its term, every node's heartbeat, and the totals
        over the gateways."""
        leader_node, _, term = (self.leader or "").rpartition(":")
        gateways = [node for node in self.nodes if node.get("role") == "gateway"]
        now = self._wall_clock()
        return {
            "leader": {"node": leader_node, "term": int(term)} if term.isdigit() else None,
            "nodes": [dict(node, age=round(max(0.0, now - float(node.get("at", now))), 3))
                      for node in sorted(self.nodes, key=lambda node: str(node.get("node")))],
            "totals": {
                "gateways": len(gateways),
                "connected_clients": sum(int(node.get("connected_clients", 0)) for node in gateways),
                "total_subscriptions": sum(int(node.get("total_subscriptions", 0)) for node in gateways),
            },
            "error": self.error or None,
        }
