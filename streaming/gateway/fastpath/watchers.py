"""The event loop's own primitives, for work that must hold no green thread while it waits.

Readiness callbacks on a file descriptor: ``read_watcher_for(mode)`` returns ``watch(fd, callback)``, a
ReadWatch on which the loop calls ``callback()`` in its own context (it must not block) each turn the
descriptor is readable, until it is paused or closed. Both loops are level-triggered: a watch whose data
nobody reads yet fires again on every turn (the loop never sleeps), so whoever reads pauses it until the data
is read. eventlet: a hub listener (``hub.add``); gevent: a libev/libuv ``io`` watcher. None for any other
async mode.

``bare_spawn_for(mode)``: start a green thread with nothing around it (``eventlet.spawn_n``,
``gevent.spawn_raw``): no result, no links, none of python-engineio's thread wrapping.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ReadWatch", "ReadWatcher", "bare_spawn_for", "read_watcher_for"]


class ReadWatch(Protocol):
    def pause(self) -> None:
        """No callbacks until ``resume``."""

    def resume(self) -> None:
        """Callbacks again while the descriptor is readable."""

    def close(self) -> None:
        """No callbacks any more (before the descriptor is closed)."""


ReadWatcher = Callable[[int, Callable[[], None]], ReadWatch]


def _nothing() -> None:
    """What eventlet's hub calls when it finds the descriptor reused: the reader then sees it closed."""


class _EventletWatch:
    __slots__ = ("_callback", "_fd", "_hub", "_listener")

    def __init__(self, fd: int, callback: Callable[[], None]) -> None:
        from eventlet import hubs

        self._hub = hubs.get_hub()
        self._fd = fd
        self._callback = callback
        self._listener: Any = None
        self.resume()

    def _fire(self, _fd: int) -> None:
        self._callback()

    def resume(self) -> None:
        if self._listener is None:
            hub = self._hub
            listener = hub.add(hub.READ, self._fd, self._fire, self._fire, _nothing)
            # the listener would keep the green thread that asked (it ends; its object, Event and deque stayed)
            listener.greenlet = hub.greenlet
            self._listener = listener

    def pause(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            self._hub.remove(listener)

    close = pause


class _GeventWatch:
    __slots__ = ("_callback", "_io")

    def __init__(self, fd: int, callback: Callable[[], None]) -> None:
        import gevent

        self._io = gevent.get_hub().loop.io(fd, 1)  # 1: READ
        self._callback = callback
        self.resume()

    def resume(self) -> None:
        if self._io is not None and not self._io.active:
            self._io.start(self._callback)

    def pause(self) -> None:
        if self._io is not None:
            self._io.stop()

    def close(self) -> None:
        if self._io is not None:
            io, self._io = self._io, None
            io.stop()
            io.close()


def read_watcher_for(async_mode: str) -> ReadWatcher | None:
    if async_mode == "eventlet":
        return _EventletWatch
    if async_mode == "gevent":
        return _GeventWatch
    return None


def bare_spawn_for(async_mode: str) -> Callable[[Callable[[], Any]], object] | None:
    if async_mode == "eventlet":
        import eventlet

        return eventlet.spawn_n
    if async_mode == "gevent":
        import gevent

        return gevent.spawn_raw
    return None
