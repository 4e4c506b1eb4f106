"""streaming.hub.sources: what a joining client is sent from one process's recorder and stores. Its missed
updates go out together, each exactly the packet python-socketio would encode for the update with its position
and ``recovered: true``; a snapshot carries the channel's position."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from socketio import packet as sio_packet

from metrics.collectors import ServiceMetrics
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.history import Position, Retention
from streaming.hub.recorder import Recorder
from streaming.hub.sources import LocalSource
from streaming.runtime.tasks import ThreadTasks

TRADES = Channel(BINANCE, Kind.TRADE, "BTCUSDT")
BOOK = Channel(BINANCE, Kind.BOOK, "BTCUSDT")


class Client:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, str]] = []
        self.packets: list[tuple[list[str], str]] = []  # one item per call

    def emit(self, event: str, data: Any, sid: str) -> None:
        self.emitted.append((event, data, sid))

    def emit_packets(self, packets: Sequence[str], sid: str) -> None:
        self.packets.append((list(packets), sid))


class Book:
    def __init__(self, wire: dict[str, Any]) -> None:
        self.wire = wire

    def peek(self, market: str, max_age: float) -> Any:
        return self if market == BOOK.market else None

    def to_wire(self) -> dict[str, Any]:
        return dict(self.wire)


def recorder() -> Recorder:
    retention = {kind: Retention(1_000, 1e9) for kind in Kind}
    return Recorder(None, retention, 1_000, 100, ThreadTasks(), ServiceMetrics(CollectorRegistry()))


def test_missed_updates_go_out_in_one_call_as_python_socketio_encodes_them_with_position_and_flag() -> None:
    history = recorder()
    updates = [{"symbol": "BTCUSDT", "id": n, "price": "97000.1", "quantity": 0.5, "note": "€"} for n in range(5)]
    for n, update in enumerate(updates):
        history.record(TRADES, update, 1_700_000_000 + n)
    client = Client()
    source = LocalSource(history, {}, client.emit, client.emit_packets, max_age=5)
    epoch = source.position(TRADES).epoch
    recovery = source.recover(TRADES, Position(2, epoch), 100)
    assert source.send_recovered("sid-1", TRADES, recovery) == 3
    assert client.emitted == []
    assert len(client.packets) == 1, "one call for the whole recovery"
    packets, sid = client.packets[0]
    assert sid == "sid-1"
    assert packets == [
        sio_packet.Packet(sio_packet.EVENT, namespace="/", data=[
            "trade", {**updates[n], "offset": n + 1, "epoch": epoch, "recovered": True}]).encode()
        for n in (2, 3, 4)]
    assert [json.loads(text[1:])[1]["id"] for text in packets] == [2, 3, 4]


def test_a_snapshot_carries_the_channels_position() -> None:
    history = recorder()
    history.record(BOOK, {"symbol": "BTCUSDT", "bidPrice": "1"}, 1_700_000_000)
    client = Client()
    source = LocalSource(history, {Kind.BOOK: Book({"symbol": "BTCUSDT", "bidPrice": "1"})}, client.emit,
                         client.emit_packets, max_age=5)
    assert source.send_snapshot("sid-1", BOOK)
    epoch = source.position(BOOK).epoch
    assert client.emitted == [("book_ticker", {"symbol": "BTCUSDT", "bidPrice": "1", "offset": 1, "epoch": epoch},
                               "sid-1")]
    assert not source.send_snapshot("sid-1", Channel(BINANCE, Kind.BOOK, "ETHUSDT"))
