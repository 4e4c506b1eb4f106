"""streaming.gateway.fastpath.packets: the hooks admission needs refuse to be missing."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import socketio

from streaming.gateway.fastpath.packets import intercept_packets


def test_a_python_socketio_without_the_wrapped_internals_stops_the_start() -> None:
    server = socketio.Server(async_mode="threading")
    server._handle_event = None  # as if a release had renamed the method
    with pytest.raises(RuntimeError, match="_handle_event.*requirements.txt"):
        intercept_packets(SimpleNamespace(server=server), refuse=lambda data, environ: None,
                          malformed=lambda exc: None, reserved=())


def test_events_named_like_lifecycle_handlers_arrive_as_unknown_events() -> None:
    server = socketio.Server(async_mode="threading")
    dispatched = []
    server._handle_event = lambda eio_sid, namespace, ack_id, data: dispatched.append(data)
    intercept_packets(SimpleNamespace(server=server), refuse=lambda data, environ: None,
                      malformed=lambda exc: None, reserved=("connect",))
    server._handle_event("e1", "/", None, ["connect", {}])
    server._handle_event("e1", "/", None, ["subscribe", {}])
    assert dispatched == [["reserved:connect"], ["subscribe", {}]]
