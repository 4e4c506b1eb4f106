"""streaming.gateway.fastpath.broadcast: the room message is byte for byte what python-socketio sends; it is written
directly to clients with nothing queued, and queued (in order) for the others."""
from __future__ import annotations

import socket

import engineio
import socketio

from streaming.core.frames import frame
from streaming.gateway.fastpath.broadcast import RoomBroadcaster
from streaming.gateway.fastpath.outlets import Outlet

PAYLOAD = {"symbol": "BTCUSDT", "price": "97000.10", "eventTime": 1764201600000, "note": "€"}


def join(server: socketio.Server, eio_sid: str, room: str) -> engineio.socket.Socket:
    sock = engineio.socket.Socket(server.eio, eio_sid)
    sock.connected = sock.upgraded = True
    server.eio.sockets[eio_sid] = sock
    sid = server.manager.connect(eio_sid, "/")
    server.manager.enter_room(sid, "/", room)
    return sock


def test_queued_clients_get_exactly_what_python_socketio_would_send() -> None:
    server = socketio.Server(async_mode="threading")
    broadcaster = RoomBroadcaster(server, spawn=lambda target: None)
    ours = join(server, "eio-a", "BTCUSDT")
    theirs = join(server, "eio-b", "other")
    assert broadcaster.emit("price_update", PAYLOAD, "BTCUSDT") == (0, 1)
    server.emit("price_update", PAYLOAD, to="other")
    assert ours.queue.get_nowait().encode() == theirs.queue.get_nowait().encode()


def test_direct_writes_carry_the_same_message_and_queued_ones_keep_their_order() -> None:
    server = socketio.Server(async_mode="threading")
    broadcaster = RoomBroadcaster(server, spawn=lambda target: None)
    reference = join(server, "eio-ref", "other")
    server.emit("price_update", PAYLOAD, to="other")
    expected = reference.queue.get_nowait().encode()  # '42["price_update",{...}]' with the Engine.IO type
    sock = join(server, "eio-direct", "BTCUSDT")
    a, b = socket.socketpair()
    try:
        broadcaster._outlets["eio-direct"] = Outlet(a, a, lambda target: None)
        assert broadcaster.emit("price_update", PAYLOAD, "BTCUSDT") == (1, 0)
        wire = frame(expected.encode("utf-8"))
        assert b.recv(len(wire) + 10) == wire
        # something queued for this client (a ping, a reply): the next update queues behind it
        sock.queue.put(engineio.packet.Packet(engineio.packet.PING))
        assert broadcaster.emit("price_update", PAYLOAD, "BTCUSDT") == (0, 1)
        assert sock.queue.get_nowait().packet_type == engineio.packet.PING
        assert sock.queue.get_nowait().encode() == expected
    finally:
        a.close()
        b.close()


def test_compressed_websockets_keep_python_engineios_path() -> None:
    server = socketio.Server(async_mode="threading")
    before = dict(server.eio._async)
    broadcaster = RoomBroadcaster(server, spawn=lambda target: None, direct=False)
    assert server.eio._async == before and broadcaster.outlets == 0
