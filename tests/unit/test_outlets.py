"""streaming.gateway.fastpath.outlets: direct writes never block, never interleave with other writes, and lose no byte.

Real connected sockets (socketpair) with small buffers, so "the socket takes part of a frame" really happens."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest

from streaming.core.frames import frame
from streaming.gateway.fastpath.outlets import Outlet, attach

BUFFER = 4096


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


class Spawns:
    def __init__(self) -> None:
        self.started: list[Callable[[], None]] = []

    def __call__(self, target: Callable[[], None]) -> None:
        self.started.append(target)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {len(data)} of {n} bytes"
        data += chunk
    return data


def in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_frame_the_socket_has_room_for_goes_out_at_once(pair) -> None:
    a, b = pair
    spawns = Spawns()
    outlet = Outlet(a, a, spawns)
    wire = frame(b'42["price_update",{"symbol":"BTCUSDT"}]')
    assert outlet.offer(wire) is True
    assert read_exactly(b, len(wire)) == wire
    assert outlet.pending == b"" and spawns.started == []


def test_a_full_socket_takes_nothing_and_the_offer_says_so(pair) -> None:
    a, b = pair
    outlet = Outlet(a, a, Spawns())
    wire = frame(b"x" * 100)
    accepted = 0
    for _ in range(100_000):
        if not outlet.offer(wire):
            break
        accepted += 1
        if outlet.pending:  # took part of a frame: the rest waits for flush
            break
    else:
        pytest.fail("the socket never filled up")
    expected = accepted * len(wire) - len(outlet.pending)
    # while anything is pending, nothing more is accepted, so frames cannot interleave
    assert outlet.offer(wire) is False
    assert len(read_exactly(b, expected)) == expected
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(1)  # not one byte more than the offers accounted for


def test_the_rest_of_a_partly_taken_frame_is_flushed_in_order(pair) -> None:
    a, b = pair
    spawns = Spawns()
    outlet = Outlet(a, a, spawns)
    big = frame(bytes(range(256)) * 4096)  # 1 MiB: far more than the socket buffers hold
    assert outlet.offer(big) is True
    assert outlet.pending and spawns.started == [outlet.flush]
    assert outlet.offer(frame(b"later")) is False
    flusher = in_thread(spawns.started[0])
    assert read_exactly(b, len(big)) == big
    flusher.join(5)
    assert outlet.pending == b"" and outlet.offer(frame(b"later")) is True
    assert read_exactly(b, 7) == frame(b"later")


def test_other_writes_send_what_is_pending_first(pair) -> None:
    a, b = pair
    outlet = Outlet(a, a, Spawns())  # the flush is never run: write() must send the pending bytes itself
    big = frame(b"p" * 200_000)
    assert outlet.offer(big)
    writer = in_thread(lambda: outlet.write(frame(b"ping")))
    assert read_exactly(b, len(big) + 6) == big + frame(b"ping")
    writer.join(5)


def test_no_direct_write_while_another_write_is_in_progress(pair) -> None:
    a, b = pair
    outlet = Outlet(a, a, Spawns())
    with outlet._lock:  # what write() holds while it waits for the socket
        assert outlet.offer(frame(b"now")) is False
    assert outlet.offer(frame(b"now")) is True


def test_a_closed_peer_makes_the_outlet_refuse(pair) -> None:
    a, b = pair
    b.close()
    outlet = Outlet(a, a, Spawns())
    for _ in range(3):  # the first send after the peer closed may still succeed
        if not outlet.offer(frame(b"x")):
            break
    assert outlet.offer(frame(b"x")) is False and outlet.closed


def test_attach_routes_eventlets_websocket_sends_through_the_outlet() -> None:
    from eventlet.green import socket as green_socket
    from eventlet.websocket import RFC6455WebSocket

    a, b = green_socket.socketpair()
    try:
        ws = RFC6455WebSocket(a, {}, version=13)
        outlet = attach(ws, Spawns())
        assert outlet is not None
        outlet.pending = b"rest-of-a-frame"
        ws.send("4hello")  # python-engineio's writer, a pong or the close frame: all go through _send
        expected = b"rest-of-a-frame" + frame(b"4hello")
        assert read_exactly(b, len(expected)) == expected
    finally:
        a.close()
        b.close()


def test_attach_leaves_unknown_websockets_alone() -> None:
    assert attach(object(), Spawns()) is None
