"""Engine.IO heartbeats: pings keep coming to idle clients (they are sent from timers, not from a green thread
per client), and a client that stops answering them is disconnected."""
from __future__ import annotations

import json
import time

import websocket

from tests.helpers import wait_for

FAST_HEARTBEAT = dict(CLIENT_PING_INTERVAL="1", CLIENT_PING_TIMEOUT="2")


def open_raw_client(service) -> tuple[websocket.WebSocket, dict]:
    url = service.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=5)
    opening = ws.recv()
    assert opening.startswith("0"), opening
    ws.send("40")
    return ws, json.loads(opening[1:])


def test_idle_clients_get_a_ping_every_interval_and_stay_connected(start_service) -> None:
    service = start_service(**FAST_HEARTBEAT)
    ws, handshake = open_raw_client(service)
    try:
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (1000, 2000)
        pings: list[float] = []
        deadline = time.monotonic() + 6.5
        while time.monotonic() < deadline:
            message = ws.recv()
            if message == "2":
                pings.append(time.monotonic())
                ws.send("3")
        # one ping a second after each pong: at least 5 in 6.5 s, none much later than its interval
        assert len(pings) >= 5, pings
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 2.0, gaps
        assert service.get("/stats").json()["data"]["connected_clients"] == 1
    finally:
        ws.close()


def test_a_client_that_stops_answering_pings_is_disconnected(start_service) -> None:
    service = start_service(**FAST_HEARTBEAT)
    ws, _ = open_raw_client(service)
    try:
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 1, timeout=5)
        # never answers a ping: gone after the interval plus the timeout (and the check's own period)
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 0, timeout=10,
                 message="the silent client was disconnected")
    finally:
        ws.close()
