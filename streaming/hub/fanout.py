"""Fanout: one update -> its kind's store (the ordering gate), its channel's history (its position), the stream
monitor, its channel's room, metrics; on an ingestor (ROLE=ingest), the store and then the cluster's publisher.

Per channel, an update not newer than the last one is dropped, so clients never see an update older than one
they already received (duplicates from overlapping connections included). Each update that passes is recorded
(streaming/hub/recorder.py) and goes out with its position: ``offset`` and ``epoch`` added to its wire form.
Which store gates a kind, and which event carries it, is all the fan-out knows of kinds.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from metrics.collectors import ServiceMetrics
from streaming.core.channels import KINDS, Channel, Kind
from streaming.core.history import Position
from streaming.core.models import Model
from streaming.exchanges.messages import StreamBatch

__all__ = ["Fanout", "Gate"]

Emit = Callable[[str, dict, str, bool], None]  # (event, payload, room, coalesce)
Record = Callable[[Channel, dict, float], Position]  # (channel, wire form, event time in seconds)
Forward = Callable[[Model, dict], None]  # (update, wire form without a position)


class Gate(Protocol):
    """A kind's store: keeps an update and returns True only if it is newer than the newest one held."""

    def offer(self, update: Model, /) -> bool: ...


class Fanout:
    def __init__(
        self,
        emit: Emit,
        audience: Callable[[Channel], int],
        gates: Mapping[Kind, Gate],
        metrics: ServiceMetrics,
        on_tick: Callable[[str], None],
        record: Record | None = None,
        settle: Callable[[str], None] = lambda room: None,
        wall_clock: Callable[[], float] = time.time,
        forward: Forward | None = None,
    ) -> None:
        self._emit = emit
        self._audience = audience
        self._gates = gates
        self._metrics = metrics
        self._on_tick = on_tick  # a ticker of this market arrived from the stream (the monitor)
        self._record = record  # None: history off, updates go out without a position
        # Sends a room's coalesced updates that wait for their window: called before a client joins the room,
        # so that one gets only what comes after what it was sent on joining.
        self.settle = settle
        self._wall_clock = wall_clock
        # ROLE=ingest: every update that passes goes to the cluster's publisher instead (its history and its
        # position are Redis's), and no client is served here
        self._forward = forward
        # Held while an update is stored and emitted, and while a client joins a room and gets the stored
        # update: so each client sees every update once, in order.
        self.lock = threading.Lock()

    def publish(self, batch: StreamBatch, from_stream: bool = True, received_at: float | None = None) -> int:
        """Emit every new update of a batch to its channel's room; returns how many were emitted.

        Updates fetched over REST (``from_stream=False``) say nothing about the health of the stream.
        ``received_at`` (``time.perf_counter()`` when the frame was read) feeds the receipt-to-emit histogram."""
        emitted = 0
        for update in batch.updates:
            channel = update.channel
            with self.lock:
                if not self._gates[channel.kind].offer(update):
                    self._metrics.updates_dropped.inc()
                    continue
                wire = update.to_wire()
                if self._forward is not None:
                    self._forward(update, wire)
                    emitted += 1
                elif self._record is not None:
                    position = self._record(channel, wire, update.event_time / 1000.0)
                    wire["offset"], wire["epoch"] = position.offset, position.epoch
                if self._forward is None and self._audience(channel) > 0:
                    policy = KINDS[channel.kind]
                    self._emit(policy.event, wire, channel.room, policy.coalesce)
                    emitted += 1
            if from_stream and channel.kind is Kind.TICKER:
                self._on_tick(channel.market)
        if emitted:
            self._metrics.updates_emitted.inc(emitted)
            latency = max(0.0, self._wall_clock() - batch.updates[-1].event_time / 1000.0)
            self._metrics.emit_latency.observe(latency)
            if received_at is not None:
                self._metrics.receive_latency.observe(max(0.0, time.perf_counter() - received_at))
        return emitted
