"""streaming.runtime.takeover: a connection taken over from its request counts (and stays open) until both the
request has returned and the connection has been released, in either order."""
from __future__ import annotations

from typing import Any

import pytest

from streaming.runtime.takeover import Takeovers


class Handshakes:
    def __init__(self) -> None:
        self.done_with: list[object] = []

    def done(self, connection: object) -> None:
        self.done_with.append(connection)


class Guard:
    """The two calls of ConnectionGuard a server makes when a connection ends."""

    def __init__(self) -> None:
        self.handshakes = Handshakes()
        self.closed_addresses: list[str] = []

    def closed(self, address: str) -> None:
        self.closed_addresses.append(address)


class Connection:
    def __init__(self) -> None:
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


def serve(takeovers: Takeovers, connection: Connection, request: Any) -> Any:
    return takeovers.served(connection, "10.0.0.1", request)


def test_a_connection_not_taken_is_forgotten_when_its_request_returns() -> None:
    guard, connection = Guard(), Connection()
    takeovers = Takeovers(guard)  # type: ignore[arg-type]
    assert serve(takeovers, connection, lambda: "answered") == "answered"
    assert guard.closed_addresses == ["10.0.0.1"] and guard.handshakes.done_with == [connection]
    assert takeovers.of(connection) is None and not takeovers.kept(connection)
    assert connection.closes == 0  # the server closes it, as before


def test_released_after_the_request_returned() -> None:
    guard, connection = Guard(), Connection()
    takeovers = Takeovers(guard)  # type: ignore[arg-type]
    releases = []

    def request() -> None:
        record = takeovers.of(connection)
        assert record is not None
        releases.append(record.take())

    serve(takeovers, connection, request)
    assert guard.closed_addresses == [] and takeovers.kept(connection)  # the server must not close it
    assert connection.closes == 0
    releases[0]()
    assert connection.closes == 1 and guard.closed_addresses == ["10.0.0.1"]
    assert guard.handshakes.done_with == [connection]
    assert not takeovers.kept(connection) and takeovers.of(connection) is None
    releases[0]()  # a second release changes nothing
    assert connection.closes == 1 and guard.closed_addresses == ["10.0.0.1"]


def test_released_before_the_request_returned() -> None:
    guard, connection = Guard(), Connection()
    takeovers = Takeovers(guard)  # type: ignore[arg-type]

    def request() -> None:
        record = takeovers.of(connection)
        assert record is not None
        record.take()()  # e.g. a refused upgrade: taken and released at once
        assert guard.closed_addresses == []  # the request is still running

    serve(takeovers, connection, request)
    assert guard.closed_addresses == ["10.0.0.1"] and connection.closes == 1
    assert takeovers.of(connection) is None


def test_a_connection_has_one_owner() -> None:
    guard, connection = Guard(), Connection()
    takeovers = Takeovers(guard)  # type: ignore[arg-type]

    def request() -> None:
        record = takeovers.of(connection)
        assert record is not None
        record.take()
        with pytest.raises(RuntimeError, match="one owner"):
            record.take()

    serve(takeovers, connection, request)


def test_a_failing_request_still_frees_the_address() -> None:
    guard, connection = Guard(), Connection()
    takeovers = Takeovers(guard)  # type: ignore[arg-type]

    def request() -> None:
        raise OSError("reset")

    with pytest.raises(OSError):
        serve(takeovers, connection, request)
    assert guard.closed_addresses == ["10.0.0.1"] and takeovers.of(connection) is None
