"""Election: ROLE=ingest takes the leader lock when it is free, and leads while it can renew it.

The lock is a Redis key with a short TTL (LEADER_TTL, about 5 s) renewed every LEADER_RENEW_INTERVAL (1 s).
Each leadership gets a new term, and its token ``<node>:<term>`` fences every publish (streaming/cluster/
scripts.py): a leader that was paused, or cut off from Redis, past its TTL can publish nothing once it resumes,
because its token is no longer the lock's value. This process also stops on its own: it counts its lease from
before each renewal it sent, so it gives up leading (``lease_valid`` turns False) no later than Redis lets the
lock lapse, and then tells ``on_deposed``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from metrics.labels import TaskName
from streaming.cluster.bus import ClusterRedis, ClusterUnavailable
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["Election"]

log = logging.getLogger(__name__)


class Election:
    def __init__(
        self,
        bus: ClusterRedis,
        node: str,
        ttl: float,
        renew_interval: float,
        tasks: TaskRunner,
        on_elected: Callable[[str], None],
        on_deposed: Callable[[str], None],
        on_error: Callable[[str], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self.node = node
        self._ttl = ttl
        self._interval = renew_interval
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._monotonic = monotonic
        self.token: str | None = None
        self._valid_until = 0.0
        self._deposed = False
        self._reported = False
        self._task = PeriodicTask(TaskName.LEADER_ELECTION, tasks, self._round, renew_interval, on_error)

    @property
    def term(self) -> int | None:
        return int(self.token.rpartition(":")[2]) if self.token else None

    def lease_valid(self) -> bool:
        """Whether this node leads now: it holds a token and its lease has not run out."""
        return self.token is not None and not self._deposed and self._monotonic() < self._valid_until

    def start(self) -> None:
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop campaigning; a leader releases the lock, so a standby takes over at once."""
        self._task.stop(timeout)
        token, self.token = self.token, None
        if token and not self._deposed:
            try:
                self._bus.resign(token)
            except ClusterUnavailable as exc:
                log.warning("cluster: could not release the leader lock (%s); it lapses by itself", exc)

    def _round(self) -> float:
        if self._deposed:
            return self._interval
        sent = self._monotonic()
        try:
            if self.token is None:
                token = self._bus.acquire(self.node, self._ttl)
                if token is not None:
                    self.token, self._valid_until = token, sent + self._ttl
                    log.info("cluster: %s leads (term %s)", self.node, self.term)
                    self._on_elected(token)
            elif self._bus.renew(self.token, self._ttl):
                self._valid_until = sent + self._ttl
            else:
                self.depose("the leader lock is no longer ours (it lapsed and another node took it)")
            self._reported = False
        except ClusterUnavailable as exc:
            if not self._reported:
                self._reported = True
                log.warning("cluster: %s", exc)
            if self.token is not None and self._monotonic() >= self._valid_until:
                self.depose(f"the leader lock could not be renewed within LEADER_TTL ({exc})")
        return self._interval

    def depose(self, reason: str) -> None:
        """Stop leading now (publishing stops at once) and tell ``on_deposed``, once."""
        if self._deposed or self.token is None:
            return
        self._deposed = True
        log.error("cluster: %s stops leading (term %s): %s", self.node, self.term, reason)
        self._on_deposed(reason)
