"""A subscribe whose handler runs after its client left joins nothing.

python-socketio checks that a client is connected when its event arrives, and runs the handler later, in a task of
its own: in a reconnect storm thousands are queued, and a client that gave up waiting has gone (or is going) by the
time its subscribe runs. Through Flask-SocketIO's in-process test client, on an app with no background tasks.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app
from config import Settings
from streaming.core.channels import Kind
from streaming.service import StreamingService
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture()
def world() -> Iterator[tuple[Any, Any, StreamingService]]:
    """An app (its catalog loaded from a fake Binance), and a connected test client."""
    with FakeBinance(tick_interval=0.2) as fake:
        app = create_app(Settings(async_mode="threading", redis_enabled=False, binance_ws_url=fake.ws_url,
                                  binance_rest_url=fake.rest_url))
        service: StreamingService = app.extensions["streaming"]
        assert service.refresh_catalog(), "the catalog loads from the fake's exchangeInfo"
        socketio = app.extensions["socketio"]
        client = socketio.test_client(app)
        assert client.is_connected()
        try:
            yield client, socketio.server, service
        finally:
            wait_for(lambda: service.tasks.running == 0, timeout=10, message="warm-up tasks")
            service.rest.close()


def _sid(server: Any, client: Any) -> str:
    sid = server.manager.sid_from_eio_sid(client.eio_sid, "/")
    assert sid, "the test client is connected to the namespace"
    return str(sid)


def test_a_subscribe_run_after_its_client_disconnected_joins_nothing(world) -> None:
    client, server, service = world
    sid = _sid(server, client)
    client.disconnect()

    joined = service.join(sid, SYMBOLS, [Kind.TICKER, Kind.TRADE])

    assert joined.positions == {} and joined.recovered == {}
    assert service.snapshot()["total_subscriptions"] == 0
    assert not service.demand.registry.keys(), "no channel is held for a client that is gone"


def test_a_subscribe_that_resumes_while_its_client_is_being_disconnected_holds_nothing_afterwards(world) -> None:
    """The disconnect's handler forgets the client's channels; a subscribe resuming after that (it waited for
    Redis or for the fan-out's lock) must not add them back: nothing would ever release them."""
    client, server, service = world
    sid = _sid(server, client)
    assert client.emit("subscribe", {"symbols": ["BTCUSDT"]}, callback=True)["symbols"] == ["BTCUSDT"]
    drop = service.demand.drop
    resumed: list[Any] = []

    def drop_then_a_subscribe_resumes(gone: str) -> None:
        drop(gone)
        resumed.append(service.join(gone, SYMBOLS, [Kind.TICKER]))

    service.demand.drop = drop_then_a_subscribe_resumes  # type: ignore[method-assign]
    client.disconnect()

    assert len(resumed) == 1 and resumed[0].positions == {}
    assert service.snapshot()["connected_clients"] == 0
    assert service.snapshot()["total_subscriptions"] == 0, "the late subscribe left no subscription behind"
    assert not service.demand.registry.keys()
    assert not server.manager.get_rooms(sid, "/")


def test_a_connected_clients_subscribe_still_joins(world) -> None:
    client, server, service = world
    sid = _sid(server, client)

    service.join(sid, SYMBOLS, [Kind.TICKER])

    assert service.snapshot()["total_subscriptions"] == len(SYMBOLS)
    assert {channel.symbol for channel in service.demand.registry.keys()} == set(SYMBOLS)
    assert set(SYMBOLS) <= {room.split(":")[-1] for room in server.manager.get_rooms(sid, "/")}
    client.disconnect()
    assert service.snapshot()["total_subscriptions"] == 0


def test_a_client_that_leaves_while_its_subscribe_waits_for_the_cache_holds_nothing(world, monkeypatch) -> None:
    """Connected when its join began; gone by the time the join takes the fan-out's lock (reading the cache, or
    Redis, lets other tasks run)."""
    client, server, service = world
    sid = _sid(server, client)
    latest = service.cache.latest

    def latest_while_the_client_leaves(market: str) -> Any:
        if client.is_connected():
            client.disconnect()
        return latest(market)

    monkeypatch.setattr(service.cache, "latest", latest_while_the_client_leaves)
    joined = service.join(sid, SYMBOLS, [Kind.TICKER])

    assert joined.positions == {}
    assert service.snapshot()["total_subscriptions"] == 0
    assert not service.demand.registry.keys()
