"""The event loop's own primitives, for work that must hold no green thread while it waits.

Readiness callbacks on a file descriptor:
``read_watcher_for(mode)`` returns ``watch(fd, callback) -> stop``: the loop calls ``callback()`` in its own
context (it must not block) each turn the descriptor is readable, until ``stop()`` is called. eventlet: a hub
listener (``hub.add``); gevent: a libev/libuv ``io`` watcher. None for any other async mode.

``bare_spawn_for(mode)``: start a green thread with nothing around it (``eventlet.spawn_n``,
``gevent.spawn_raw``): no result, no links, none of python-engineio's thread wrapping.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ReadWatcher", "bare_spawn_for", "read_watcher_for"]

Stop = Callable[[], None]
ReadWatcher = Callable[[int, Callable[[], None]], Stop]


def _nothing() -> None:
    """What eventlet's hub calls when it finds the descriptor reused: the reader then sees it closed."""


def read_watcher_for(async_mode: str) -> ReadWatcher | None:
    if async_mode == "eventlet":
        from eventlet import hubs

        def watch_eventlet(fd: int, callback: Callable[[], None]) -> Stop:
            hub = hubs.get_hub()
            listener = hub.add(hub.READ, fd, lambda _fd: callback(), lambda _fd: callback(), _nothing)
            return lambda: hub.remove(listener)

        return watch_eventlet
    if async_mode == "gevent":
        import gevent

        def watch_gevent(fd: int, callback: Callable[[], None]) -> Stop:
            watcher = gevent.get_hub().loop.io(fd, 1)  # 1: READ
            watcher.start(callback)

            def stop() -> None:
                watcher.stop()
                watcher.close()

            return stop

        return watch_gevent
    return None


def bare_spawn_for(async_mode: str) -> Callable[[Callable[[], Any]], object] | None:
    if async_mode == "eventlet":
        import eventlet

        return eventlet.spawn_n
    if async_mode == "gevent":
        import gevent

        return gevent.spawn_raw
    return None
