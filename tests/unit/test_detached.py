"""streaming.gateway.fastpath.detached: a WebSocket read when the loop says it is readable, against a real
client (wsproto) on a real socket pair and python-engineio's real Socket. The event loop's part (the read
watcher, spawning, timers) is played by the test: it calls what the loop would call, when it would."""
from __future__ import annotations

import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import engineio
import pytest
from engineio import packet as eio_packet
from engineio.socket import Socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from streaming.gateway.fastpath.detached import CLOSE_TIMEOUT, DetachedWebSocket
from streaming.gateway.fastpath.outlets import Outlet
from streaming.gateway.fastpath.transport import CONNECTION, raw_socket

MAX_MESSAGE = 10_000


class GreenLike:
    """A green socket as gevent's server has it: ``_sock`` is the OS-level socket (non-blocking, what the reader
    reads), ``sendall`` waits for room, ``settimeout`` is the green socket's alone."""

    def __init__(self, raw: socket.socket) -> None:
        raw.setblocking(False)
        self._sock = raw
        self.timeout: float | None = None

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self._sock], [], 2)
            view = view[self._sock.send(view):]

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()


class Loop:
    """What the event loop does for the WebSocket: watches, spawns (at once), timers (when the test says)."""

    def __init__(self) -> None:
        self.readable: Callable[[], None] | None = None
        self.watched_fd: int | None = None
        self.stopped = 0
        self.timers: list[tuple[float, Callable[[Any], None], Any]] = []
        self.spawned = 0
        self.active = False

    def watch(self, fd: int, callback: Callable[[], None]) -> Loop:
        self.watched_fd, self.readable, self.active = fd, callback, True
        return self

    # the ReadWatch
    def pause(self) -> None:
        self.active = False

    def resume(self) -> None:
        assert self.stopped == 0, "resumed after close"
        self.active = True

    def close(self) -> None:
        self.active = False
        self.stopped += 1

    def spawn(self, fn: Callable[[], Any]) -> None:
        self.spawned += 1
        fn()

    def spawn_later(self, delay: float, fn: Callable[[Any], None], arg: Any) -> None:
        self.timers.append((delay, fn, arg))

    def ready(self) -> None:
        assert self.readable is not None, "nothing is watched"
        assert self.active, "the loop calls only an active watch"
        self.readable()


class Client:
    """The client end: wsproto on a plain socket, with a timeout so a missing answer fails the test."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(2)
        self.ws = WSConnection(ConnectionType.CLIENT)

    def upgrade_request(self) -> dict:
        """The environ a WSGI server would build for this client's upgrade request (it was read already)."""
        request = self.ws.send(Request(host="127.0.0.1", target="/socket.io/?EIO=4&transport=websocket"))
        head, _, _ = request.decode("latin-1").partition("\r\n\r\n")
        lines = head.split("\r\n")
        environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/"}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        return environ

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def events(self, until: type) -> list[Event]:
        """Read until an event of type ``until`` arrives (or the connection ends); every event read."""
        seen: list[Event] = []
        while not any(isinstance(event, until) for event in seen):
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            seen.extend(self.ws.events())
            if not data:
                break
        return seen


class Served:
    def __init__(self) -> None:
        self.server = engineio.Server(async_mode="threading", async_handlers=False,
                                      max_http_buffer_size=MAX_MESSAGE)
        self.received: list[Any] = []
        self.server.on("message", lambda sid, data: self.received.append(data))
        self.sock = Socket(self.server, "sid-1")
        self.server.sockets["sid-1"] = self.sock
        self.loop = Loop()
        self.outlets: dict[str, Outlet] = {}
        self.opened: list[Any] = []
        self.released = 0
        ours, theirs = socket.socketpair()
        self.ours = GreenLike(ours)
        self.client = Client(theirs)
        self.ws = DetachedWebSocket(self.sock, self.outlets, self.loop.spawn, self.loop.spawn_later,
                                    self.loop.watch, self.opened.append)
        self.environ = self.client.upgrade_request()
        self.environ["SERVER_SOFTWARE"] = "gevent/test"
        self.environ["wsgi.input"] = type("Input", (), {"rfile": type("R", (), {"raw": type("Raw", (), {
            "_sock": self.ours})()})()})()

    def take_over(self) -> Callable[[], None]:
        def release() -> None:
            self.released += 1
            self.ours.close()

        return release

    def serve(self) -> list[Event]:
        """Serve the upgrade; every event the client has read by the time it is accepted."""
        assert self.ws.serve(self.environ, self.take_over) == []
        answer = self.client.events(until=AcceptConnection)
        assert any(isinstance(event, AcceptConnection) for event in answer)
        return answer

    def close(self) -> None:
        self.client.sock.close()
        if self.ours.fileno() != -1:
            self.ours.close()


@pytest.fixture
def served() -> Iterator[Served]:
    served = Served()
    try:
        yield served
    finally:
        served.close()


def test_the_upgrade_is_answered_and_the_connection_served_from_the_loop(served: Served) -> None:
    served.sock.send(eio_packet.Packet(eio_packet.OPEN, {"sid": "sid-1"}))  # queued before the upgrade
    answer = served.serve()
    assert served.opened == [served.ours]
    assert served.sock.connected and served.sock.upgraded
    assert served.outlets["sid-1"] is served.ws.outlet
    assert served.loop.watched_fd == served.ours.fileno()
    if not any(isinstance(event, TextMessage) for event in answer):
        answer = served.client.events(until=TextMessage)
    texts = [event.data for event in answer if isinstance(event, TextMessage)]
    assert texts and texts[0].startswith("0")  # the queued OPEN went out through the writer
    assert served.ws.socket.timeout == served.server.ping_interval + served.server.ping_timeout
    # the kept environ holds the connection for raw_socket, and no request objects
    assert served.environ[CONNECTION] is served.ours and raw_socket(served.environ) is served.ours
    assert served.environ["wsgi.input"].read() == b""
    assert served.environ["HTTP_SEC_WEBSOCKET_KEY"]  # the headers stay, for the session's request context


def test_messages_reach_engineio_in_order_including_fragmented_ones(served: Served) -> None:
    served.serve()
    served.client.send(Message(data="4first"))
    served.client.send(Message(data="4sec", message_finished=False))
    served.client.send(Message(data="ond", message_finished=True))
    served.client.send(Message(data="4third"))
    served.loop.ready()
    assert served.received == ["first", "second", "third"]
    assert served.released == 0 and not served.sock.closed


def test_the_watch_is_paused_while_the_reader_runs_and_resumed_after(served: Served) -> None:
    served.serve()
    during: list[bool] = []
    served.server.on("message", lambda sid, data: during.append(served.loop.active))
    served.client.send(Message(data="4subscribe"))
    served.loop.ready()
    assert during == [False]  # a level-triggered loop would call again on every turn until it is read
    assert served.loop.active and served.loop.stopped == 0


def test_a_read_under_way_is_not_started_twice(served: Served) -> None:
    served.serve()
    reads_before = served.loop.spawned
    served.ws._reading = True  # the loop calls again while the reader has not run yet
    served.loop.ready()
    assert served.loop.spawned == reads_before


def test_pings_are_answered(served: Served) -> None:
    served.serve()
    served.client.send(Ping(payload=b"are you there"))
    served.loop.ready()
    pongs = [event for event in served.client.events(until=Pong) if isinstance(event, Pong)]
    assert pongs and pongs[0].payload == b"are you there"


def _assert_ended(served: Served) -> None:
    assert served.released == 1
    assert served.loop.stopped == 1
    assert served.sock.closed
    assert "sid-1" not in served.server.sockets
    assert "sid-1" not in served.outlets
    assert served.ws.outlet is not None and served.ws.outlet.closed


def test_the_clients_close_is_answered_and_ends_the_connection(served: Served) -> None:
    served.serve()
    served.client.send(CloseConnection(code=1000))
    served.loop.ready()
    closes = [event for event in served.client.events(until=CloseConnection) if isinstance(event, CloseConnection)]
    assert closes and closes[0].code == 1000
    _assert_ended(served)


def test_a_client_that_hangs_up_ends_the_connection(served: Served) -> None:
    served.serve()
    served.client.sock.shutdown(socket.SHUT_WR)
    served.loop.ready()
    _assert_ended(served)


def test_an_oversized_message_closes_with_1009(served: Served) -> None:
    served.serve()
    served.client.send(Message(data="4" + "x" * MAX_MESSAGE))
    served.loop.ready()
    closes = [event for event in served.client.events(until=CloseConnection) if isinstance(event, CloseConnection)]
    assert closes and closes[0].code == 1009
    assert served.received == []
    _assert_ended(served)


def test_malformed_engineio_input_ends_the_connection(served: Served) -> None:
    served.serve()
    served.client.send(Message(data="4ok"))
    served.client.send(Message(data=""))  # no packet type at all
    served.loop.ready()
    assert served.received == ["ok"]
    _assert_ended(served)


def test_a_packet_for_an_idle_client_goes_straight_into_its_socket_without_a_green_thread(served: Served) -> None:
    served.serve()
    spawned = served.loop.spawned
    served.sock.send(eio_packet.Packet(eio_packet.MESSAGE, '2["subscribed",{}]'))
    served.sock.send(eio_packet.Packet(eio_packet.MESSAGE, "31[]"))
    assert served.loop.spawned == spawned and served.sock.queue.qsize() == 0
    texts = []
    while len(texts) < 2:
        texts += [event.data for event in served.client.events(until=TextMessage) if isinstance(event, TextMessage)]
    assert texts == ['42["subscribed",{}]', "431[]"]


def test_a_server_close_sends_a_close_frame_and_waits_for_the_answer(served: Served) -> None:
    served.serve()
    served.sock.close(wait=False, abort=True)  # python-engineio's close: the writer closes the WebSocket
    closes = [event for event in served.client.events(until=CloseConnection) if isinstance(event, CloseConnection)]
    assert closes and closes[0].code == 1000
    assert served.released == 0  # the client has CLOSE_TIMEOUT to answer
    assert [delay for delay, _, _ in served.loop.timers] == [CLOSE_TIMEOUT]
    served.client.send(CloseConnection(code=1000))
    served.loop.ready()
    _assert_ended(served)
    _delay, fn, arg = served.loop.timers[0]
    fn(arg)  # the timer fires late: nothing happens twice
    assert served.released == 1 and served.loop.stopped == 1


def test_an_idle_clients_close_goes_out_from_the_closing_thread_after_what_was_sent(served: Served) -> None:
    served.serve()
    spawned = served.loop.spawned
    served.sock.send(eio_packet.Packet(eio_packet.MESSAGE, '2["server_shutdown",{}]'))
    served.sock.close(wait=False, abort=True)  # a shutdown closing every client
    assert served.loop.spawned == spawned, "no green thread for the close"
    assert served.sock.queue.qsize() == 0
    events = served.client.events(until=CloseConnection)
    texts = [event.data for event in events if isinstance(event, TextMessage)]
    closes = [event for event in events if isinstance(event, CloseConnection)]
    assert texts == ['42["server_shutdown",{}]'] and closes and closes[0].code == 1000
    assert served.client.sock.recv(10) == b"", "our side of the stream ended after the close frame"
    assert [delay for delay, _, _ in served.loop.timers] == [CLOSE_TIMEOUT]
    served.client.send(CloseConnection(code=1000))
    served.loop.ready()
    _assert_ended(served)


def test_a_close_behind_a_write_under_way_waits_for_it(served: Served) -> None:
    served.serve()
    assert served.ws.outlet is not None
    served.ws.outlet.pending = b"\x81\x01x"  # the rest of a frame the socket took only part of
    served.sock.close(wait=False, abort=True)
    events = served.client.events(until=CloseConnection)
    texts = [event.data for event in events if isinstance(event, TextMessage)]
    assert texts == ["x"] and isinstance(events[-1], CloseConnection), "the rest first, then the close"


def test_a_client_that_never_answers_our_close_is_dropped_by_the_timer(served: Served) -> None:
    served.serve()
    served.sock.close(wait=False, abort=True)
    _delay, fn, arg = served.loop.timers[0]
    fn(arg)
    _assert_ended(served)


def test_a_refused_upgrade_releases_the_connection_and_closes_the_session(served: Served) -> None:
    del served.environ["HTTP_SEC_WEBSOCKET_KEY"]
    assert served.ws.serve(served.environ, served.take_over) == []
    assert served.released == 1
    assert served.sock.closed
    assert served.loop.readable is None
