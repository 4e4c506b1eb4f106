"""Clients for end-to-end tests: a recording python-socketio client, and a raw one that can stop reading."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import socketio
import websocket

from tests.helpers import scaled, wait_for

EVENTS = ("connected", "subscribed", "unsubscribed", "price_update", "trade", "book_ticker", "error", "stream_status",
          "server_shutdown", "replay_data", "replay_end")


def in_arrival_order(sio: socketio.Client) -> None:
    """Make a python-socketio client run its event handlers in the order the messages arrived.

    python-engineio's client hands every message to a thread of its own, so two events that arrive back to back
    (a burst of recovered trades) can reach their handlers in either order; a recorder must see them in order.
    Its handlers only record, so running them on the reading thread is safe. Tests only: it replaces the
    engine.io client's ``_trigger_event``, checked to exist."""
    trigger = sio.eio._trigger_event
    assert callable(trigger), "python-engineio's Client has no _trigger_event any more: update in_arrival_order"

    def in_order(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return trigger(event, *args, **kwargs)

    sio.eio._trigger_event = in_order


def without_positions(answer: dict[str, Any]) -> dict[str, Any]:
    """A `subscribed` answer without its `positions` and `recovered`, once they are checked: one position
    ``{offset, epoch}`` per channel subscribed, and a `recovered` object."""
    positions, recovered = answer["positions"], answer["recovered"]
    assert set(positions) == {f"{stream}:{symbol}" for symbol in answer["symbols"] for stream in answer["streams"]}
    for position in positions.values():
        assert set(position) == {"offset", "epoch"} and isinstance(position["offset"], int), position
        assert position["offset"] >= 0 and isinstance(position["epoch"], str) and position["epoch"], position
    assert isinstance(recovered, dict) and all(isinstance(flag, bool) for flag in recovered.values())
    return {key: value for key, value in answer.items() if key not in ("positions", "recovered")}


def unpositioned(update: dict[str, Any]) -> dict[str, Any]:
    """An event's payload without its position (`offset`, `epoch`) and `recovered` flag, once they are checked."""
    assert isinstance(update["offset"], int) and update["offset"] >= 1 and isinstance(update["epoch"], str), update
    return {key: value for key, value in update.items() if key not in ("offset", "epoch", "recovered")}


class RecordingClient:
    """Connects with python-socketio and records every documented event it receives, in order."""

    def __init__(self, url: str, transports: list[str] | None = None, auth: Any = None,
                 **client_options: Any) -> None:
        self.url = url
        self.sio = socketio.Client(**{"reconnection": False, **client_options})
        in_arrival_order(self.sio)
        self.events: list[tuple[str, Any]] = []
        self.arrivals: list[float] = []  # wall-clock receipt time of each event, parallel to ``events``
        self._lock = threading.Lock()
        for name in EVENTS:
            self.sio.on(name, self._recorder(name))
        self.sio.on("disconnect", self._release_socket)
        self.sio.connect(url, transports=transports or ["websocket"], auth=auth, wait_timeout=10)

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any = None) -> None:
            with self._lock:
                self.events.append((name, data))
                self.arrivals.append(time.time())

        return record

    def _release_socket(self, reason: Any = None) -> None:
        """python-engineio's client leaves its WebSocket open when the server ends the connection (and opens
        a new one when it reconnects): close it here so no socket leaks. A disconnect of our own closes it
        itself (shutting it down under it would stall that for the ping timeout)."""
        if reason == self.sio.reason.CLIENT_DISCONNECT:
            return
        ws = getattr(self.sio.eio, "ws", None)
        if ws is not None:
            ws.shutdown()

    def received(self, name: str, predicate: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        with self._lock:
            return [data for event, data in self.events if event == name and predicate(data)]

    def first_arrival(self, name: str, predicate: Callable[[Any], bool] = lambda _: True) -> float | None:
        """The wall-clock receipt time of the first matching event, None if none arrived."""
        with self._lock:
            return next((at for (event, data), at in zip(self.events, self.arrivals)
                         if event == name and predicate(data)), None)

    def wait(self, name: str, predicate: Callable[[Any], bool] = lambda _: True, timeout: float = 10.0,
             count: int = 1) -> list[Any]:
        return wait_for(
            lambda: (found := self.received(name, predicate)) and len(found) >= count and found,
            timeout=timeout,
            message=f"no {count} {name!r} event(s) matching in {timeout}s; got {self.summary()}",
        )

    def summary(self) -> str:
        with self._lock:
            names = [event for event, _ in self.events]
        return f"{len(names)} events, last: {names[-8:]}"

    def latencies_ms(self) -> list[float]:
        """Receipt time minus Binance's event time of every price_update received, in milliseconds."""
        with self._lock:
            pairs = list(zip(self.events, self.arrivals))
        return [at * 1000 - data["eventTime"] for (name, data), at in pairs if name == "price_update"]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.arrivals.clear()

    def emit(self, event: str, data: Any = None) -> None:
        self.sio.emit(event, data)

    def call(self, event: str, data: Any = None, timeout: float = 10.0) -> Any:
        return self.sio.call(event, data, timeout=timeout)

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()
        self._release_socket(None)


class RawClient:
    """Socket.IO over a plain WebSocket that reads only when asked: a client that can stop reading.

    Its receive buffer is small, so the server's writes to it back up soon after it stops. ``read`` answers
    Engine.IO pings and records events (and connect errors) in order until a condition on them holds."""

    def __init__(self, url: str, receive_buffer: int = 4096) -> None:
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(
            ws_url, timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer),))
        opened = self.ws.recv()
        assert isinstance(opened, str) and opened.startswith("0{"), f"not an Engine.IO open packet: {opened!r}"
        self.ws.send("40")
        self.events: list[tuple[str, Any]] = []
        self.frames: list[str] = []  # the text of every Socket.IO event frame, as it came
        self.connect_errors: list[Any] = []

    def emit(self, event: str, data: Any = None) -> None:
        self.ws.send("42" + json.dumps([event, data]))

    def read(self, until: Callable[[list[tuple[str, Any]]], bool], timeout: float = 10.0) -> list[tuple[str, Any]]:
        """Read until ``until(self.events)`` holds; AssertionError after ``scaled(timeout)`` seconds."""
        deadline = time.monotonic() + scaled(timeout)
        while not until(self.events):
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise websocket.WebSocketTimeoutException("deadline passed")
                self.ws.settimeout(left)
                self._handle(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                names = [name for name, _ in self.events]
                raise AssertionError(f"condition not met after {scaled(timeout):.1f}s; {len(names)} events, "
                                     f"last {names[-8:]}") from None
        return self.events

    def _handle(self, frame: str | bytes) -> None:
        if frame == "2":  # Engine.IO ping
            self.ws.send("3")
        elif isinstance(frame, str) and frame.startswith("42"):
            self.frames.append(frame)
            name, *args = json.loads(frame[2:])
            self.events.append((name, args[0] if args else None))
        elif isinstance(frame, str) and frame.startswith("44"):
            self.connect_errors.append(json.loads(frame[2:]))

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() leaves the socket open when the server has ended the connection


def refused_connection(url: str, transports: list[str] | None = None, **kwargs: object) -> dict:
    """Connect, expect a refusal, and return the connect_error payload the server sent."""
    client = socketio.Client(reconnection=False)
    errors: list = []
    client.on("connect_error", errors.append)
    try:
        try:
            client.connect(url, transports=transports or ["websocket"], wait_timeout=5, **kwargs)  # type: ignore
        except socketio.exceptions.ConnectionError:
            pass
        else:
            client.disconnect()
            raise AssertionError(f"{url}: the connection was accepted, not refused")
    finally:
        ws = getattr(client.eio, "ws", None)
        if ws is not None:  # python-engineio leaves it open after a refusal
            ws.shutdown()
    assert errors, "no connect_error"
    return errors[0]
