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


def test_coalesced_messages_of_a_room_go_out_in_one_write_each_still_its_own_event() -> None:
    """Trades: several messages of a room wait for the flush, then reach a direct client as one write of their
    frames, in order, and a queued client as the same packets in order; both counted once flushed."""
    server = socketio.Server(async_mode="threading")
    spawned: list[object] = []
    broadcaster = RoomBroadcaster(server, spawn=spawned.append, window=0.05)
    flushed: list[tuple[int, int]] = []
    broadcaster.on_flushed = lambda direct, queued: flushed.append((direct, queued))
    reference = join(server, "eio-ref", "other")
    queued_client = join(server, "eio-queued", "trade:BTCUSDT")
    queued_client.queue.put(engineio.packet.Packet(engineio.packet.PING))  # it has something on its way
    join(server, "eio-direct", "trade:BTCUSDT")
    a, b = socket.socketpair()
    try:
        broadcaster._outlets["eio-direct"] = Outlet(a, a, lambda target: None)
        trades = [{"symbol": "BTCUSDT", "id": n} for n in range(3)]
        assert [broadcaster.emit("trade", t, "trade:BTCUSDT", coalesce=True) for t in trades] == [(0, 0)] * 3
        assert len(spawned) == 1, "one flusher, started on the first coalesced message"
        b.setblocking(False)
        try:
            assert b.recv(100) == b"", "nothing goes out before the flush"
        except BlockingIOError:
            pass
        broadcaster.flush()
        expected = []
        for t in trades:
            server.emit("trade", t, to="other")
            expected.append(reference.queue.get_nowait().encode())
        wire = b"".join(frame(e.encode("utf-8")) for e in expected)
        b.setblocking(True)
        assert b.recv(len(wire) + 10) == wire
        assert queued_client.queue.get_nowait().packet_type == engineio.packet.PING
        assert [queued_client.queue.get_nowait().encode() for _ in trades] == expected
        assert flushed == [(3, 3)]
        broadcaster.flush()
        assert flushed == [(3, 3)], "an empty flush reports nothing"
    finally:
        a.close()
        b.close()


def test_without_a_window_coalesced_messages_go_at_once() -> None:
    server = socketio.Server(async_mode="threading")
    broadcaster = RoomBroadcaster(server, spawn=lambda target: None)
    client = join(server, "eio-a", "trade:BTCUSDT")
    assert broadcaster.emit("trade", PAYLOAD, "trade:BTCUSDT", coalesce=True) == (0, 1)
    assert client.queue.qsize() == 1


def test_a_clients_encoded_packets_go_out_in_one_write_or_queued_in_order() -> None:
    """A recovery: a client's packets, already encoded, reach it in one write of their frames when nothing is on
    its way to it, else through its queue, in order; the bytes are python-socketio's for the same payloads."""
    server = socketio.Server(async_mode="threading")
    broadcaster = RoomBroadcaster(server, spawn=lambda target: None)
    reference = join(server, "eio-ref", "other")
    payloads = [{**PAYLOAD, "offset": n, "recovered": True} for n in range(3)]
    texts = [server.packet_class(socketio.packet.EVENT, namespace="/", data=["price_update", p]).encode()
             for p in payloads]
    expected = []
    for p in payloads:
        server.emit("price_update", p, to="other")
        expected.append(reference.queue.get_nowait().encode())
    sock = join(server, "eio-direct", "somewhere")
    sid = server.manager.sid_from_eio_sid("eio-direct", "/")
    a, b = socket.socketpair()
    try:
        broadcaster._outlets["eio-direct"] = Outlet(a, a, lambda target: None)
        assert broadcaster.emit_packets(texts, sid) == (3, 0)
        wire = b"".join(frame(e.encode("utf-8")) for e in expected)
        assert b.recv(len(wire) + 10) == wire
        sock.queue.put(engineio.packet.Packet(engineio.packet.PING))
        assert broadcaster.emit_packets(texts, sid) == (0, 3)
        assert sock.queue.get_nowait().packet_type == engineio.packet.PING
        assert [sock.queue.get_nowait().encode() for _ in texts] == expected
    finally:
        a.close()
        b.close()


def test_without_the_fast_path_encoded_packets_are_python_socketios_own_emits() -> None:
    server = socketio.Server(async_mode="threading")
    broadcaster = RoomBroadcaster(server, spawn=lambda target: None, library=True)
    client = join(server, "eio-a", "BTCUSDT")
    texts = [server.packet_class(socketio.packet.EVENT, namespace="/", data=["price_update", {"n": n}]).encode()
             for n in range(2)]
    assert broadcaster.emit_packets(texts, "BTCUSDT") == (0, 2)
    assert [client.queue.get_nowait().encode() for _ in texts] == ["4" + text for text in texts]
