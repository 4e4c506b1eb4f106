"""streaming.gateway.fastpath.install: the version check, the off switch, and what each installs."""
from __future__ import annotations

import logging

import engineio
import pytest
import socketio

from streaming.gateway.fastpath.install import TESTED, install, installed_versions, untested
from streaming.gateway.fastpath.pings import _DeferredPing
from streaming.gateway.fastpath.rooms import IndexedManager

TESTED_VERSIONS = {name: series + ".1" for name, series in TESTED.items()}


class FlaskSocketIO:
    """What install() uses of Flask-SocketIO's SocketIO: its python-socketio server."""

    def __init__(self) -> None:
        self.server = socketio.Server(async_mode="eventlet")


def ping_task(server: socketio.Server) -> object:
    sock = engineio.socket.Socket(server.eio, "sid1")
    return server.eio._async["thread"](target=sock._send_ping, args=(), kwargs={})


def test_the_pinned_libraries_are_the_tested_series() -> None:
    """requirements.txt pins releases of the tested series: a bump of either must re-test the hooks."""
    assert untested(installed_versions()) == []


@pytest.mark.parametrize("versions, problem", [
    ({"python-socketio": "5.19.0", "python-engineio": "4.15.1"}, "python-socketio 5.19.0 (tested: 5.18.*)"),
    ({"python-socketio": "5.18.1", "python-engineio": "4.1.0"}, "python-engineio 4.1.0 (tested: 4.15.*)"),
    ({"python-socketio": "5.18.1", "python-engineio": "4.150"}, "python-engineio 4.150 (tested: 4.15.*)"),
    ({"python-socketio": "5.18.1"}, "python-engineio missing (tested: 4.15.*)"),
])
def test_versions_outside_the_tested_series_are_named(versions: dict[str, str], problem: str) -> None:
    assert untested(versions) == [problem]
    assert untested({name: series for name, series in TESTED.items()}) == []


def test_on_it_installs_the_hooks_and_writes_directly() -> None:
    sio = FlaskSocketIO()
    fast = install(sio, lambda target: None, enabled=True, compression=False, versions=TESTED_VERSIONS)
    assert fast.enabled and fast.reason == ""
    assert isinstance(ping_task(sio.server), _DeferredPing)
    assert fast.broadcaster.direct and sio.server.eio._async["websocket"].__name__ == "websocket"
    assert type(sio.server.manager) is IndexedManager


@pytest.mark.parametrize("enabled, versions, reason", [
    (False, TESTED_VERSIONS, "FAST_PATH=false"),
    (True, {**TESTED_VERSIONS, "python-socketio": "6.0.0"}, "untested python-socketio 6.0.0 (tested: 5.18.*)"),
])
def test_off_it_installs_nothing_and_emits_through_python_socketio(
    enabled: bool, versions: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    sio = FlaskSocketIO()
    pristine = dict(sio.server.eio._async)
    emitted: list[tuple] = []
    sio.server.emit = lambda event, data, to, namespace: emitted.append((event, data, to, namespace))
    with caplog.at_level(logging.INFO, logger="streaming.gateway.fastpath.install"):
        fast = install(sio, lambda target: None, enabled=enabled, compression=False, versions=versions)
    assert not fast.enabled and fast.reason == reason
    assert sio.server.eio._async == pristine, "no hook into python-engineio"
    assert not isinstance(ping_task(sio.server), _DeferredPing)
    assert type(sio.server.manager) is socketio.Manager, "the library's own client manager"
    assert fast.broadcaster.emit("price_update", {"symbol": "BTCUSDT"}, "BTCUSDT") == (0, 0)
    assert emitted == [("price_update", {"symbol": "BTCUSDT"}, "BTCUSDT", "/")]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warned) == enabled, "untested versions warn; the off switch only informs"
    assert any("fast path off" in r.getMessage() for r in caplog.records)
