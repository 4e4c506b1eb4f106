"""streaming.gateway.fastpath.pings: python-engineio's ping task becomes a deferred green thread; every other task is
untouched.
"""
from __future__ import annotations

from types import SimpleNamespace

import engineio
from engineio import packet

from streaming.gateway.fastpath.pings import _DeferredPing, ping_on_timers, send_ping


def eio_server(async_mode: str = "eventlet") -> engineio.Server:
    return engineio.Server(async_mode=async_mode)


def test_the_ping_task_is_deferred_and_sends_one_ping() -> None:
    server = eio_server()
    assert ping_on_timers(server)
    sock = engineio.socket.Socket(server, "sid1")
    task = server._async["thread"](target=sock._send_ping, args=(), kwargs={})
    assert isinstance(task, _DeferredPing)
    started = []
    task._spawn_later = lambda delay, fn, arg: started.append((delay, fn, arg))
    task.start()
    assert started == [(server.ping_interval, send_ping, sock)]
    send_ping(sock)
    queued = sock.queue.get_nowait()
    assert queued.packet_type == packet.PING and sock.last_ping


def test_other_background_tasks_still_get_a_green_thread() -> None:
    server = eio_server()
    original = server._async["thread"]
    ping_on_timers(server)
    task = server._async["thread"](target=lambda: None, args=(), kwargs={})
    assert isinstance(task, original)


def test_no_ping_for_a_closing_socket() -> None:
    sock = SimpleNamespace(closing=True, closed=False, last_ping=None, send=lambda pkt: sent.append(pkt))
    sent: list = []
    send_ping(sock)
    assert sent == [] and sock.last_ping is None


def test_threading_mode_keeps_python_engineios_own_ping_tasks() -> None:
    server = eio_server("threading")
    assert not ping_on_timers(server)
