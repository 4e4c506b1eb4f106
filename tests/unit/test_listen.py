"""streaming.runtime.server.listen: the socket the entry point binds before it imports the app; GuardedListener:
that socket as eventlet's accept loop takes connections from it."""
from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from streaming.runtime.server import GuardedListener, listen


def test_the_socket_listens_at_once_and_queues_connections_before_any_accept() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
        accepted = [sock.accept()[0] for _ in waiting]  # completed by the kernel before anything accepted them
        for conn in waiting + accepted:
            conn.close()
    finally:
        sock.close()


def test_a_second_instance_on_the_port_fails_instead_of_sharing_it() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            listen("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


class Guard:
    """The two calls GuardedListener makes of the connection guard: it refuses the addresses' connections whose
    numbers are in ``refuse`` (counted from 1), and pauses 0.5 s on EMFILE."""

    def __init__(self, events: list[str], refuse: frozenset[int] = frozenset()) -> None:
        self._events = events
        self._refuse = refuse
        self._count = 0

    def accepted(self, sock: socket.socket, address: str) -> bool:
        self._count += 1
        admitted = self._count not in self._refuse
        self._events.append("accepted" if admitted else "refused")
        if not admitted:
            sock.close()
        return admitted

    def accept_failed(self, exc: OSError) -> float | None:
        return 0.5 if exc.errno == errno.EMFILE else None


@pytest.fixture()
def backlog() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listening socket with 7 connections waiting in its backlog."""
    sock = listen("127.0.0.1", 0)
    waiting = [socket.create_connection(sock.getsockname()[:2], timeout=2) for _ in range(7)]
    try:
        yield sock, waiting
    finally:
        for conn in waiting:
            conn.close()
        sock.close()


def _take(listener: GuardedListener, n: int) -> list[Any]:
    taken = [listener.accept()[0] for _ in range(n)]
    for conn in taken:
        conn.close()
    return taken


def test_the_accept_loop_lets_the_others_run_after_every_few_connections_of_a_full_backlog(backlog) -> None:
    sock, _ = backlog
    events: list[str] = []
    listener = GuardedListener(sock, Guard(events), sleep=lambda s: events.append(f"sleep {s:g}"),  # type: ignore[arg-type]
                               accepts_per_turn=3)

    _take(listener, 7)

    assert events == ["accepted"] * 3 + ["sleep 0"] + ["accepted"] * 3 + ["sleep 0"] + ["accepted"]


def test_connections_refused_at_once_count_toward_a_turn(backlog) -> None:
    """A flood the guard closes (an address over its cap) yields too, although no accept() returns."""
    sock, _ = backlog
    events: list[str] = []
    listener = GuardedListener(sock, Guard(events, refuse=frozenset(range(1, 7))),  # type: ignore[arg-type]
                               sleep=lambda s: events.append(f"sleep {s:g}"), accepts_per_turn=2)

    _take(listener, 1)

    assert events == ["refused"] * 2 + ["sleep 0"] + ["refused"] * 2 + ["sleep 0"] + ["refused"] * 2 + \
        ["sleep 0", "accepted"]


def test_running_out_of_descriptors_pauses_the_accept_loop_and_then_accepts_again() -> None:
    events: list[str] = []
    results: list[Any] = [OSError(errno.EMFILE, "Too many open files"), (socket.socket(), ("127.0.0.1", 1))]

    class Listener:
        def accept(self) -> Any:
            result = results.pop(0)
            if isinstance(result, OSError):
                raise result
            return result

    listener = GuardedListener(Listener(), Guard(events),  # type: ignore[arg-type]
                               sleep=lambda s: events.append(f"sleep {s:g}"))
    conn, address = listener.accept()
    conn.close()

    assert events == ["sleep 0.5", "accepted"] and address == ("127.0.0.1", 1)


def test_the_default_sleep_is_the_one_monkey_patching_put_in_place_later(backlog, monkeypatch) -> None:
    """The module is imported before eventlet patches time.sleep: the listener must not have kept the blocking one
    (a pause on EMFILE would stop the whole server)."""
    sock, _ = backlog
    events: list[str] = []
    listener = GuardedListener(sock, Guard(events), accepts_per_turn=1)  # type: ignore[arg-type]
    monkeypatch.setattr("time.sleep", lambda s: events.append(f"patched sleep {s:g}"))

    _take(listener, 2)

    assert events == ["accepted", "patched sleep 0", "accepted"]
