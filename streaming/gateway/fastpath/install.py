"""install(): the one entry point of the fast path. It checks the installed python-socketio and python-engineio
against the versions its hooks were written and tested for, then installs the delivery hooks (frame-once room
writes, direct socket writes, on-demand writers, timer heartbeats, gevent WebSockets) and the client manager
that indexes each client's rooms, or none of them.

With ``FAST_PATH=false``, or with library versions it was not tested with, every message goes out through the
libraries' own delivery (``socketio.Server.emit`` and python-engineio's writer per client): slower, the same bytes.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from streaming.gateway.fastpath.broadcast import RoomBroadcaster
from streaming.gateway.fastpath.pings import ping_on_timers
from streaming.gateway.fastpath.rooms import index_rooms

__all__ = ["TESTED", "FastPath", "install", "installed_versions", "untested"]

log = logging.getLogger(__name__)

# The release series (major.minor) whose internals the hooks use; requirements.txt pins releases of these.
TESTED: Mapping[str, str] = {"python-socketio": "5.18", "python-engineio": "4.15"}


@dataclass(frozen=True)
class FastPath:
    """What install() did: whether the hooks are in, why not if not, and the room broadcaster to emit with."""

    enabled: bool
    reason: str
    broadcaster: RoomBroadcaster


def installed_versions() -> dict[str, str]:
    """The installed version of each library in TESTED ("" when it is not installed)."""
    versions = {}
    for name in TESTED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def untested(versions: Mapping[str, str]) -> list[str]:
    """Each library whose installed version is outside its tested series, as ``"name X (tested: Y.*)"``."""
    problems = []
    for name, series in TESTED.items():
        version = versions.get(name, "")
        if version != series and not version.startswith(series + "."):
            problems.append(f"{name} {version or 'missing'} (tested: {series}.*)")
    return problems


def install(socketio: Any, spawn: Callable[[Callable[[], None]], object], *, enabled: bool, compression: bool,
            batch_window: float = 0.0, versions: Mapping[str, str] | None = None) -> FastPath:
    """Install the fast path on Flask-SocketIO's ``socketio`` unless ``enabled`` is False or the libraries are
    not the tested ones. With ``compression`` the WebSocket servers frame (compress) every message themselves,
    so room messages go through python-engineio's queues, framed per client. ``batch_window``: how long a room's
    coalesced messages (trades) wait to be written together (direct writes only)."""
    installed = versions if versions is not None else installed_versions()
    problems = untested(installed)
    if not enabled:
        reason = "FAST_PATH=false"
    elif problems:
        reason = "untested " + ", ".join(problems)
        log.warning("fast path off: %s; messages go out through the libraries' own delivery (slower). Install the "
                    "versions of requirements.txt, or set FAST_PATH=false to silence this", reason)
    else:
        reason = ""
    on = not reason
    if on:
        ping_on_timers(socketio.server.eio)  # no green thread per client just to wait for its next heartbeat
        index_rooms(socketio.server)  # a disconnect finds the client's rooms without testing every room
    broadcaster = RoomBroadcaster(socketio.server, spawn, direct=on and not compression, library=not on,
                                  window=batch_window)
    log.info("fast path %s (%s)", "on" if on else "off",
             ", ".join(f"{name} {version}" for name, version in installed.items()) + (f"; {reason}" if reason else ""))
    return FastPath(on, reason, broadcaster)
