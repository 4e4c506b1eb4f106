"""Where a new subscriber's first updates come from, and where a channel's stream comes from.

A ``Source`` gives a joining client its channel positions, the updates it missed (``since``) and the latest
update of a state kind; a ``Supply`` makes a channel's stream flow while it has subscribers. In one process
(ROLE=all) they are the recorder with the kinds' stores, and the upstream pools (``LocalSource``,
``PoolSupply``); on a gateway both are its feed from Redis (streaming/cluster/feed.py). Demand uses them only
through these two interfaces.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from streaming.core.channels import Channel, Kind
from streaming.core.history import Position, Recovery
from streaming.core.models import Model
from streaming.core.packets import packet, recovered
from streaming.exchanges.registry import EXCHANGES
from streaming.hub.recorder import Recorder
from streaming.upstream.pool import UpstreamPool

__all__ = ["LocalSource", "PoolSupply", "Snapshots", "Source", "Supply"]

log = logging.getLogger(__name__)

Emit = Callable[[str, Any, str], Any]  # (event, data, sid)
EmitPackets = Callable[[Sequence[str], str], Any]  # (encoded packets, sid)


class Source(Protocol):
    """Called under the fan-out's lock, so nothing it sends can cross a live update."""

    recovery_limit: int  # 0: no recovery (history off)
    cold_fallback: bool  # a ticker channel without a fresh snapshot is fetched from Binance REST

    def position(self, channel: Channel) -> Position | None: ...

    def recover(self, channel: Channel, since: Position, limit: int) -> Recovery[str]: ...

    def send_recovered(self, sid: str, channel: Channel, recovery: Recovery[str]) -> int: ...

    def send_snapshot(self, sid: str, channel: Channel) -> bool: ...


class Supply(Protocol):
    def prepare(self, channels: Sequence[Channel]) -> None:
        """Before a join, outside the fan-out's lock: whatever the channels need to be served at once."""

    def want(self, channel: Channel) -> None: ...

    def release(self, channel: Channel, grace: float | None = None) -> None: ...


class Snapshots(Protocol):
    """A kind's store, as a new subscriber's first update comes from it."""

    def peek(self, market: str, max_age: float) -> Model | None: ...


class LocalSource:
    """One process: positions and recoveries from the recorder (if history is on), snapshots from the stores."""

    cold_fallback = True

    def __init__(self, recorder: Recorder | None, snapshots: Mapping[Kind, Snapshots], emit: Emit,
                 emit_packets: EmitPackets, max_age: float) -> None:
        """``emit(event, data, sid)`` sends a client one message; ``emit_packets(packets, sid)`` sends it encoded
        Socket.IO EVENT packets, in order (the room broadcaster's, whose room here is the client's own)."""
        self._recorder = recorder
        self._snapshots = snapshots
        self._emit = emit
        self._emit_packets = emit_packets
        self._max_age = max_age
        self.recovery_limit = recorder.recovery_limit if recorder is not None else 0

    def position(self, channel: Channel) -> Position | None:
        return self._recorder.position(channel) if self._recorder is not None else None

    def recover(self, channel: Channel, since: Position, limit: int) -> Recovery[str]:
        if self._recorder is None:
            return Recovery(False, reason="history is off (HISTORY_ENABLED=false)")
        return self._recorder.recover(channel, since, limit)

    def send_recovered(self, sid: str, channel: Channel, recovery: Recovery[str]) -> int:
        """The client's missed updates of the channel, encoded from their stored text (no JSON is parsed) and
        sent together."""
        event = channel.policy.event
        position = self.position(channel)
        epoch = position.epoch if position is not None else ""
        self._emit_packets([recovered(packet(event, entry.item, entry.offset, epoch)) for entry in recovery.entries],
                           sid)
        return len(recovery.entries)

    def send_snapshot(self, sid: str, channel: Channel) -> bool:
        update = self._snapshots[channel.kind].peek(channel.market, self._max_age)
        if update is None:
            return False
        wire = update.to_wire()
        position = self.position(channel)  # the snapshot is the newest update of the channel
        if position is not None:
            wire["offset"], wire["epoch"] = position.offset, position.epoch
        self._emit(channel.policy.event, wire, sid)
        return True


class PoolSupply:
    """One process or an ingestor: each channel's stream on its exchange route's upstream pool."""

    def __init__(self, pools: Mapping[tuple[str, str], UpstreamPool]) -> None:
        self._pools = pools  # by (exchange, route)

    def prepare(self, channels: Sequence[Channel]) -> None:
        return None

    def _pool_and_stream(self, channel: Channel) -> tuple[UpstreamPool | None, str]:
        """The channel's pool (None where its exchange is not enabled: a gateway that has it and an ingestor
        that has not) and its stream."""
        exchange = EXCHANGES.get(channel.exchange)
        if exchange is None:
            return None, ""
        return self._pools.get((channel.exchange, exchange.route_of(channel))), exchange.stream_of(channel)

    def want(self, channel: Channel) -> None:
        pool, stream = self._pool_and_stream(channel)
        if pool is None:
            log.warning("%s is wanted, but its exchange is not in EXCHANGES here", channel.key)
            return
        pool.want(stream)

    def release(self, channel: Channel, grace: float | None = None) -> None:
        pool, stream = self._pool_and_stream(channel)
        if pool is not None:
            pool.release(stream, grace)
