"""Hostile and malformed input, over Socket.IO, raw WebSocket and HTTP: each gets the documented error, and the
sender's connection (where it should survive), the service and the other clients are unharmed."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.e2e.clients import RecordingClient
from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.helpers import scaled, wait_for
from tests.metrics_samples import metric_value


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[tuple]:
    """One service for the whole module, with a bystander that must keep receiving prices throughout."""
    with FakeBinance(tick_interval=0.2) as fake:
        log = Path(tmp_path_factory.mktemp("bad-input")) / "service.log"
        service = ServiceProcess(service_env(fake, CLIENT_EVENTS_PER_SECOND="1000", CLIENT_EVENT_BURST="1000"),
                                 log).start()
        bystander = RecordingClient(service.url)
        bystander.emit("subscribe", {"symbols": ["BTCUSDT"]})
        bystander.wait("price_update")
        try:
            yield service, bystander
        finally:
            bystander.close()
            service.stop()
            assert "Traceback" not in service.log(), service.log()[-3000:]


def unharmed(service: ServiceProcess, bystander: RecordingClient) -> None:
    assert service.get("/health").status_code == 200
    before = len(bystander.received("price_update"))
    bystander.wait("price_update", count=before + 1, timeout=5)


DEEP: Any = "BTCUSDT"
for _ in range(300):
    DEEP = [DEEP]

EVENT_CASES = [
    ("subscribe", None, "INVALID_REQUEST"),
    ("subscribe", 42, "INVALID_REQUEST"),
    ("subscribe", "BTCUSDT", "INVALID_REQUEST"),
    ("subscribe", ["BTCUSDT"], "INVALID_REQUEST"),
    ("subscribe", {}, "INVALID_REQUEST"),
    ("subscribe", {"symbols": None}, "INVALID_REQUEST"),
    ("subscribe", {"symbols": "BTCUSDT"}, "INVALID_REQUEST"),
    ("subscribe", {"symbols": {"BTCUSDT": True}}, "INVALID_REQUEST"),
    ("subscribe", {"symbols": []}, "INVALID_REQUEST"),
    ("subscribe", {"symbols": [1, 2.5, True, None]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": [["BTCUSDT"], {"$gt": ""}]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": [DEEP]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": [f"COIN{i}USDT" for i in range(10_000)]}, "TOO_MANY_SYMBOLS"),
    ("subscribe", {"symbols": ["A" * 1000]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": ["BTC€USDT", "😀USDT", "ＢＴＣＵＳＤＴ"]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": ["BTC\x00USDT", "\x1b[31mBTCUSDT", "BTC\nUSDT"]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": ["../../etc/passwd", "..%2F..%2Fetc"]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": ["BTCUSDT'; DROP TABLE prices;--", "' OR '1'='1"]}, "INVALID_SYMBOL"),
    ("subscribe", {"symbols": ["{{7*7}}", "${jndi:ldap://127.0.0.1/a}", "<script>alert(1)</script>"]},
     "INVALID_SYMBOL"),
    ("subscribe", {"symbols": ["NOTACOINUSDT", "BTCUSDT_260327", "BTCUSD_PERP"]}, "UNKNOWN_SYMBOL"),
    ("subscribe", {"symbols": ["price:BTCUSDT", "*", "BTCUSDT*"]}, "INVALID_SYMBOL"),
    ("unsubscribe", None, "INVALID_REQUEST"),
    ("unsubscribe", {"symbols": [None, "x y"]}, "INVALID_SYMBOL"),
    ("unsubscribe", {"symbols": [f"S{i}" for i in range(5000)]}, "TOO_MANY_SYMBOLS"),
    ("subscrbe", {"symbols": ["BTCUSDT"]}, "UNKNOWN_EVENT"),
    ("price_update", {"symbol": "BTCUSDT", "price": 1}, "UNKNOWN_EVENT"),
    ("connect_error", "x", "UNKNOWN_EVENT"),
    ("é" * 200, None, "UNKNOWN_EVENT"),
    ("connect", {}, "UNKNOWN_EVENT"),  # never re-runs the server's connect handler
    ("disconnect", None, "UNKNOWN_EVENT"),  # nor its disconnect handler
    ("*", "some-other-client-sid", "UNKNOWN_EVENT"),  # nor runs the catch-all as another client
]


@pytest.mark.parametrize("event, payload, code", EVENT_CASES,
                         ids=[f"{i}-{c[0][:12]}-{c[2]}" for i, c in enumerate(EVENT_CASES)])
def test_bad_events_get_the_documented_error(world, event: str, payload: Any, code: str) -> None:
    service, bystander = world
    client = RecordingClient(service.url)
    try:
        client.emit(event, payload)
        error = client.wait("error", lambda e: e["code"] == code, timeout=5)[0]
        assert isinstance(error["message"], str) and error["message"]
        assert len(json.dumps(error)) < 4000, "errors never echo huge input back"
        assert client.sio.connected
        client.emit("subscribe", {"symbols": ["ETHUSDT"]})
        client.wait("price_update", lambda d: d["symbol"] == "ETHUSDT")
    finally:
        client.close()
    unharmed(service, bystander)


def test_extra_arguments_and_binary_payloads(world) -> None:
    service, bystander = world
    client = RecordingClient(service.url)
    try:
        client.sio.emit("subscribe", ({"symbols": ["SOLUSDT"]}, "extra", 3))
        client.wait("subscribed")
        client.emit("subscribe", b"\x00\x01\x02binary")
        client.wait("error", lambda e: e["code"] == "INVALID_REQUEST")
        client.emit("subscribe", {"symbols": [b"BTCUSDT"]})
        client.wait("error", lambda e: e["code"] == "INVALID_SYMBOL")
        assert client.sio.connected
    finally:
        client.close()
    unharmed(service, bystander)


def test_oversized_message_closes_only_the_sender(world) -> None:
    service, bystander = world
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["B" * 1_000_000]})
        wait_for(lambda: not client.sio.connected, timeout=5)
    finally:
        client.close()
    unharmed(service, bystander)


# Socket.IO packets python-socketio cannot decode: the sender's connection is closed, each is counted, and each
# kind of decoding error is logged once.
MALFORMED_FRAMES = ["42[", '42["subscribe"', "4x", "4" + "9" * 5000, '42["subscribe",' + "[" * 5000 + "]" * 5000 + "]",
                    b"\x00\xff\x10"]
# Decodable packets that are no documented event: an UNKNOWN_EVENT error, and the connection stays.
ANSWERED_FRAMES = ['42"not a list"', "42[1,2]", "42[null]"]
# Engine.IO packets Engine.IO does not act on (an unknown type, a probe after the upgrade): the connection stays.
IGNORED_FRAMES = ["99", "2probe"]
MALFORMED_LOG = re.compile(r"closing a client that sent a malformed Socket\.IO packet \((\w+): ")
MALFORMED_PACKETS = "websocket_streaming_rejected_inputs_total"


def raw_connection(service: ServiceProcess) -> websocket.WebSocket:
    """A plain WebSocket with an Engine.IO session and the default namespace connected (greeting read)."""
    url = service.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=scaled(5))
    assert ws.recv().startswith("0{")  # engine.io open
    ws.send("40")
    assert ws.recv().startswith("40")  # namespace connected
    assert json.loads(ws.recv()[2:])[0] == "connected"
    return ws


def close(ws: websocket.WebSocket) -> None:
    """Close with a close frame if still connected, and the socket in any case (close() skips it when the
    connection has already ended)."""
    ws.close()
    ws.shutdown()


def send(ws: websocket.WebSocket, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        ws.send_binary(frame)
    else:
        ws.send(frame)


def events_until_closed(ws: websocket.WebSocket) -> list[str] | None:
    """The frames received until the server closed the connection; None if it was still open after 5 s."""
    frames = []
    while True:
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError):
            return frames
        if not frame:  # the close frame
            return frames
        frames.append(frame)


def still_serves(ws: websocket.WebSocket) -> bool:
    ws.send('42["subscribe",{"symbols":["BTCUSDT"]}]')
    while True:
        frame = ws.recv()
        if frame.startswith('42["subscribed"'):
            return True


def malformed_packets(service: ServiceProcess) -> float:
    return metric_value(service.get("/metrics").text, MALFORMED_PACKETS, code="MALFORMED_PACKET")


def test_raw_malformed_socketio_packets_over_a_plain_websocket(world) -> None:
    service, bystander = world
    before = malformed_packets(service)
    for frame in MALFORMED_FRAMES * 2:  # every kind twice: a count per packet, a log line per kind
        ws = raw_connection(service)
        try:
            send(ws, frame)
            assert events_until_closed(ws) == [], f"{frame!r:.40}: the connection was not closed at once"
        finally:
            close(ws)
    assert malformed_packets(service) == before + 2 * len(MALFORMED_FRAMES)
    kinds = MALFORMED_LOG.findall(service.log())
    assert kinds and len(kinds) == len(set(kinds)), f"one line per kind of error: {kinds}"
    assert "Traceback" not in service.log()
    unharmed(service, bystander)


def test_raw_packets_that_are_answered_or_ignored_keep_the_connection(world) -> None:
    service, bystander = world
    before = malformed_packets(service)
    for frame in ANSWERED_FRAMES + IGNORED_FRAMES:
        ws = raw_connection(service)
        try:
            send(ws, frame)
            if frame in ANSWERED_FRAMES:
                error = json.loads(ws.recv()[2:])
                assert error[0] == "error" and error[1]["code"] == "UNKNOWN_EVENT", (frame, error)
            assert still_serves(ws), frame
        finally:
            close(ws)
    # an empty message is no Engine.IO packet at all: Engine.IO ends the connection before Socket.IO sees it
    ws = raw_connection(service)
    try:
        ws.send("")
        assert events_until_closed(ws) is not None, "the connection ended"
    finally:
        close(ws)
    assert malformed_packets(service) == before, "none of these is a malformed Socket.IO packet"
    unharmed(service, bystander)


HTTP_CASES = [
    ("GET", "/price/%00", (400,)),
    ("GET", "/price/..%2F..%2Fetc%2Fpasswd", (400, 404)),
    ("GET", "/price/../../etc/passwd", (400, 404)),
    ("GET", "/price/%3Cscript%3Ealert(1)%3C%2Fscript%3E", (400,)),
    ("GET", "/price/" + "A" * 5000, (400,)),
    ("GET", "/price/BTC%20USDT", (400,)),
    ("GET", "/price/%F0%9F%98%80", (400,)),
    ("GET", "/price/%7B%7B7*7%7D%7D", (400,)),
    ("GET", "/price/BTCUSDT'%20OR%20'1'='1", (400,)),
    ("GET", "/price/", (404,)),
    ("GET", "/price/NOTACOINUSDT", (404,)),
    ("POST", "/price/BTCUSDT", (405,)),
    ("DELETE", "/health", (405,)),
    ("GET", "/health?x=%3Cscript%3E", (200,)),
    ("GET", "/nowhere/" + "x" * 3000, (404,)),
    ("GET", "/socket.io/?EIO=4&transport=polling&sid=forged", (400,)),
    ("GET", "/socket.io/?EIO=99&transport=polling", (400,)),
]


@pytest.mark.parametrize("method, path, statuses", HTTP_CASES, ids=[f"{m} {p[:40]}" for m, p, _ in HTTP_CASES])
def test_bad_http_requests_get_json_errors(world, method: str, path: str, statuses: tuple[int, ...]) -> None:
    service, bystander = world
    response = requests.request(method, service.url + path, timeout=10)
    assert response.status_code in statuses, (response.status_code, response.text[:200])
    if not path.startswith("/socket.io/"):
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        if response.status_code >= 400:
            assert body["success"] is False and body["error"] and body["code"]
            assert "<script>" not in response.text and "Traceback" not in response.text
    unharmed(service, bystander)
