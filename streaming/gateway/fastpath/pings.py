"""Engine.IO heartbeats from timers instead of one sleeping green thread per client.

python-engineio schedules each client's next PING by starting a background task that sleeps ``ping_interval``
and then sends it: with 10,000 clients that is 10,000 green threads parked in a sleep, each holding its stack
(about 10 KB per client measured under eventlet). ``ping_on_timers`` makes this server start that task as a
timer of the event loop instead, which then starts a bare green thread: nothing but the timer exists until
it fires; the green thread sends the PING exactly as python-engineio does, and ends. Missing PONGs are still
found by python-engineio's service task, which checks every client's ping timeout.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engineio import packet
from engineio.socket import Socket

__all__ = ["ping_on_timers", "send_ping"]

SpawnLater = Callable[..., object]


def send_ping(sock: Any) -> None:
    """What ``engineio.socket.Socket._send_ping`` does once its sleep is over."""
    if not sock.closing and not sock.closed:
        sock.last_ping = time.time()
        sock.send(packet.Packet(packet.PING))


class _DeferredPing:
    """Stands for python-engineio's ping task (its ``start``); runs ``send_ping`` after ``delay``."""

    def __init__(self, spawn_later: SpawnLater, delay: float, sock: Any) -> None:
        self._spawn_later = spawn_later
        self._delay = delay
        self._sock = sock

    def start(self) -> None:
        self._spawn_later(self._delay, send_ping, self._sock)

    def join(self) -> None:  # nothing waits for a ping task; present for the interface's sake
        pass


def spawn_later_for(async_mode: str) -> SpawnLater | None:
    """``call(delay, fn, arg)``: a hub timer that starts a bare green thread running ``fn(arg)`` once ``delay``
    has passed, holding nothing but the timer meanwhile. None for other modes (threading: python-engineio's way)."""
    if async_mode == "eventlet":
        import eventlet
        from eventlet import hubs

        def later(delay: float, fn: Callable[[Any], None], arg: Any) -> object:
            return hubs.get_hub().schedule_call_global(delay, eventlet.spawn_n, fn, arg)

        return later
    if async_mode == "gevent":
        import gevent

        def later(delay: float, fn: Callable[[Any], None], arg: Any) -> object:
            timer = gevent.get_hub().loop.timer(delay)
            timer.start(gevent.spawn_raw, fn, arg)  # a started watcher is kept alive by the loop until it fires
            return timer

        return later
    return None


def ping_on_timers(eio: Any) -> bool:
    """Make this python-engineio server's ping tasks deferred green threads; False when the mode has none."""
    spawn_later = spawn_later_for(eio.async_mode)
    if spawn_later is None:
        return False
    drivers = dict(eio._async)
    make_thread = drivers["thread"]
    ping_task = Socket._send_ping

    def thread(target: Callable[..., Any], args: Any = None, kwargs: Any = None) -> Any:
        if getattr(target, "__func__", None) is ping_task:
            return _DeferredPing(spawn_later, eio.ping_interval, target.__self__)
        return make_thread(target=target, args=args, kwargs=kwargs)

    drivers["thread"] = thread
    eio._async = drivers
    return True
