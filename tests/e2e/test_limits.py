"""Client-facing limits end to end: event rate, symbols per request and per client, message size, /price per
IP, negative caching of unknown symbols, allowed origins."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
import socketio

from tests.e2e.clients import RecordingClient, refused_connection
from tests.e2e.process import ROOT, service_env
from tests.helpers import scaled, wait_for


def emit_all(client: RecordingClient, events: list[tuple[str, object]]) -> list[dict]:
    """Emit every event at once, each with an acknowledgement callback; return the acknowledgements in order."""
    acks: dict[int, dict] = {}
    for i, (event, data) in enumerate(events):
        client.sio.emit(event, data, callback=lambda answer=None, i=i: acks.__setitem__(i, answer))
    wait_for(lambda: len(acks) == len(events), timeout=20, message=f"acknowledgements of {len(events)} events")
    return [acks[i] for i in range(len(events))]


def test_event_flood_is_rate_limited_and_others_are_unaffected(start_service) -> None:
    service = start_service(CLIENT_EVENTS_PER_SECOND="5", CLIENT_EVENT_BURST="5", CLIENT_ABUSE_TIMEOUT="0",
                            CLIENT_ABUSE_STRIKES="100")  # a retired key: ignored, with a warning
    assert "CLIENT_ABUSE_STRIKES is no longer used" in service.log()
    flooder, bystander = RecordingClient(service.url), RecordingClient(service.url)
    try:
        bystander.emit("subscribe", {"symbols": ["BTCUSDT"]})
        acks = emit_all(flooder, [("subscribe", {"symbols": ["ETHUSDT"]})] * 40)
        refused = [ack for ack in acks if ack.get("code") == "RATE_LIMITED"]
        assert len(refused) >= 30, acks  # every event is answered through its acknowledgement
        assert all(ack["retry_after"] >= 0 and "per second" in ack["message"] for ack in refused)
        notices = flooder.received("error", lambda e: e["code"] == "RATE_LIMITED")
        assert 1 <= len(notices) <= 3, f"{len(notices)} error events for {len(refused)} refusals"
        assert flooder.sio.connected
        before = len(bystander.received("price_update"))
        bystander.wait("price_update", count=before + 3)
        assert service.metric("websocket_streaming_rejected_inputs_total", code="RATE_LIMITED") == len(refused)
    finally:
        flooder.close()
        bystander.close()


def test_a_burst_of_subscribes_and_unsubscribes_is_survived(start_service) -> None:
    """A naive dashboard subscribing one symbol per emit: 300 events at once, with the default limits."""
    service = start_service()
    client = RecordingClient(service.url)
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT", "XRPUSDT"]
    try:
        events = [(event, {"symbols": [symbols[i % len(symbols)]]})
                  for i in range(150) for event in ("subscribe", "unsubscribe")]
        acks = emit_all(client, events)
        refused = [ack for ack in acks if ack.get("code") == "RATE_LIMITED"]
        assert len(refused) >= 200 and all(ack["retry_after"] > 0 for ack in refused), acks[-3:]
        (notice, *_) = client.wait("error", lambda e: e["code"] == "RATE_LIMITED")
        assert notice["retry_after"] > 0
        assert client.sio.connected and not client.received("error", lambda e: e["code"] == "DISCONNECTED")
        time.sleep(refused[-1]["retry_after"])  # a compliant client waits as told before it goes on
        assert client.call("subscribe", {"symbols": ["BTCUSDT"]})["symbols"] == ["BTCUSDT"]
        client.clear()
        client.wait("price_update", lambda d: d["symbol"] == "BTCUSDT", count=2)
        assert client.sio.connected and not client.received("error")
    finally:
        client.close()


def test_a_client_flooding_past_the_abuse_timeout_is_disconnected_with_a_reason(start_service) -> None:
    timeout = 2.0
    service = start_service(CLIENT_EVENTS_PER_SECOND="5", CLIENT_EVENT_BURST="5", CLIENT_ABUSE_TIMEOUT=str(timeout))
    client = RecordingClient(service.url)
    try:
        started = time.time()
        for _ in range(2000):  # 100 events a second, 20 times the limit, for at most 20 s
            if not client.sio.connected or time.time() - started > 20:
                break
            client.emit("whatever", {})
            time.sleep(0.01)
        (reason,) = client.wait("error", lambda e: e["code"] == "DISCONNECTED")
        assert f"more than {timeout:g} seconds" in reason["message"]
        wait_for(lambda: not client.sio.connected, timeout=5)
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 0)
        first_refused = client.first_arrival("error", lambda e: e["code"] == "RATE_LIMITED")
        cut_off = client.first_arrival("error", lambda e: e["code"] == "DISCONNECTED")
        assert first_refused is not None and cut_off is not None
        assert cut_off - started > timeout, "not before the timeout"
        assert cut_off - first_refused < timeout + scaled(0.75), "not much after it either"
    finally:
        client.close()


def test_symbols_per_request_and_per_client_are_capped(start_service) -> None:
    service = start_service(MAX_SYMBOLS_PER_REQUEST="5", MAX_SYMBOLS_PER_CLIENT="3")
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": [f"S{i}USDT" for i in range(6)]})
        (error,) = client.wait("error")
        assert error["code"] == "TOO_MANY_SYMBOLS" and "at most 5" in error["message"]
        client.emit("subscribe", {"symbols": ["BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "ADAUSDT"]})
        (ack,) = client.wait("subscribed")
        assert ack["symbols"] == ["BTCUSDT", "ETHUSDT", "XRPUSDT"]
        over = client.wait("error", lambda e: e["code"] == "TOO_MANY_SYMBOLS" and e["event"] == "subscribe",
                           count=2)[-1]
        assert over["symbols"] == ["SOLUSDT", "ADAUSDT"]
        client.emit("subscribe", {"symbols": ["BTCUSDT"]})  # already held: no new room needed
        client.wait("subscribed", count=2)
    finally:
        client.close()


def test_an_oversized_message_costs_only_its_sender_the_connection(start_service) -> None:
    service = start_service(MAX_MESSAGE_BYTES="4096")
    big, normal = RecordingClient(service.url), RecordingClient(service.url)
    try:
        normal.emit("subscribe", {"symbols": ["BTCUSDT"]})
        big.emit("subscribe", {"symbols": ["X" * 20_000]})
        wait_for(lambda: not big.sio.connected, timeout=5)
        before = len(normal.received("price_update"))
        normal.wait("price_update", count=before + 3)
        assert service.get("/health").status_code == 200
    finally:
        big.close()
        normal.close()


def test_price_requests_are_limited_per_address(start_service) -> None:
    service = start_service(PRICE_REQUESTS_PER_SECOND="1", PRICE_REQUEST_BURST="3")
    answers = [service.get("/price/BTCUSDT") for _ in range(6)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert limited[0].json()["code"] == "RATE_LIMITED" and int(limited[0].headers["Retry-After"]) >= 1
    assert service.get("/health").status_code == 200, "other routes are not limited"


def test_unknown_symbols_are_asked_about_once(start_service, fake_binance) -> None:
    fake_binance.set_rest_failure(503)
    service = start_service(SYMBOLS_RETRY_INTERVAL="3600")  # the symbol list stays unloaded
    # the service loads the list in the background: restore REST only once that attempt has been answered
    wait_for(lambda: any(path == "/fapi/v1/exchangeInfo" for path, _ in fake_binance.rest_requests()), timeout=10,
             message="the service asked for the symbol list")
    time.sleep(0.3)
    fake_binance.set_rest_failure(None)
    assert service.get("/price/NOPECOINUSDT").status_code == 404
    assert service.get("/price/NOPECOINUSDT").status_code == 404
    asked = [q for p, q in fake_binance.rest_requests() if p == "/fapi/v1/ticker/24hr"]
    assert asked == [{"symbol": "NOPECOINUSDT"}]


def test_allowed_origins_apply_to_socketio_and_http(start_service) -> None:
    service = start_service(CORS_ALLOWED_ORIGINS="https://dash.example.com")
    ok = requests.get(service.url + "/price/BTCUSDT", headers={"Origin": "https://dash.example.com"}, timeout=5)
    assert ok.headers.get("Access-Control-Allow-Origin") == "https://dash.example.com"
    other = requests.get(service.url + "/health", headers={"Origin": "https://evil.example"}, timeout=5)
    assert "Access-Control-Allow-Origin" not in other.headers
    handshake = service.url + "/socket.io/?EIO=4&transport=polling"
    assert requests.get(handshake, headers={"Origin": "https://evil.example"}, timeout=5).status_code == 400
    assert requests.get(handshake, headers={"Origin": "https://dash.example.com"}, timeout=5).status_code == 200
    client = socketio.Client(reconnection=False)
    client.connect(service.url, transports=["polling"], headers={"Origin": "https://dash.example.com"})
    assert client.connected
    client.disconnect()
    own = RecordingClient(service.url)  # websocket-client sends the service's own origin: not cross-origin
    own.close()
    refused = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(service.url, transports=["websocket"], headers={"Origin": "https://evil.example"})
    assert "not an accepted origin" in service.log()


def test_authentication_refuses_to_start_with_any_origin(fake_binance) -> None:
    secret = "a-secret-that-is-long-enough-for-hs256"
    for auth in ({"AUTH_TOKENS": "dash-token"}, {"JWT_SECRET": secret}):
        env = service_env(fake_binance, **auth)
        env.pop("CORS_ALLOWED_ORIGINS", None)  # the default: *
        result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 2, result
        (key,) = auth
        assert "CORS_ALLOWED_ORIGINS=*" in result.stderr and key in result.stderr, result.stderr
        assert "list the origins" in result.stderr and "Traceback" not in result.stderr
        assert "dash-token" not in result.stderr and secret not in result.stderr


JWT_SECRET = "jwt-secret-for-tests-jwt-secret-for-tests"


def test_authentication_with_static_tokens_and_jwts(start_service) -> None:
    import time as clock

    from streaming.core.auth import make_jwt

    service = start_service(AUTH_TOKENS="dash-token,bot-token", JWT_SECRET=JWT_SECRET, PROTECT_OPS_ENDPOINTS="true",
                            JWT_AUDIENCE="prices", JWT_ISSUER="https://login.example.com",
                            CORS_ALLOWED_ORIGINS="https://dash.example.com")
    issued = {"aud": "prices", "iss": "https://login.example.com"}

    def connect(**kwargs: object) -> socketio.Client:
        client = socketio.Client(reconnection=False)
        client.connect(service.url, transports=["websocket"], wait_timeout=5, **kwargs)  # type: ignore[arg-type]
        return client

    for kwargs in ({"auth": {"token": "bot-token"}},
                   {"auth": {"token": make_jwt({"sub": "d", "exp": clock.time() + 60, **issued}, JWT_SECRET)}}):
        client = connect(**kwargs)
        assert client.connected
        client.disconnect()
    query = socketio.Client(reconnection=False)
    query.connect(service.url + "?token=dash-token", transports=["polling"], wait_timeout=5)
    assert query.connected
    query.disconnect()
    now = clock.time()
    refusals = [
        ({}, "authentication required"), ({"auth": {"token": "nope"}}, "invalid token"),
        ({"auth": {"token": make_jwt({"exp": now - 60, **issued}, JWT_SECRET)}}, "token expired: get a new one"),
        ({"auth": {"token": make_jwt({"exp": now + 600, "nbf": now + 300, **issued}, JWT_SECRET)}},
         "token not valid yet"),
        ({"auth": {"token": make_jwt({"exp": now + 60, **issued, "aud": "billing"}, JWT_SECRET)}},
         "not meant for this service"),
        ({"auth": {"token": make_jwt({"exp": now + 60, **issued, "iss": "https://evil.example"}, JWT_SECRET)}},
         "not from the expected issuer"),
        ({"auth": {"token": make_jwt({"exp": now + 60}, JWT_SECRET)}}, "an 'aud' claim is required"),
        ({"auth": {"token": make_jwt({**issued}, JWT_SECRET)}}, "an 'exp' claim is required"),
    ]
    for kwargs, reason in refusals:
        error = refused_connection(service.url, **kwargs)
        assert reason in error["message"] and error["data"]["code"] == "UNAUTHORIZED", error
        token = kwargs.get("auth", {}).get("token")  # type: ignore[attr-defined]
        assert not token or token not in error["message"], "the token is never echoed"
    assert service.get("/stats").status_code == 401
    assert service.get("/metrics", headers={"Authorization": "Bearer dash-token"}).status_code == 200
    assert service.get("/stats?token=bot-token").status_code == 200
    assert service.get("/health").status_code == 200 and service.get("/price/BTCUSDT").status_code in (200, 503)
    log = service.log()
    assert "dash-token" not in log and "bot-token" not in log and JWT_SECRET not in log


def test_connections_are_limited_per_address_and_in_total(start_service) -> None:
    service = start_service(MAX_CONNECTIONS_PER_IP="3", MAX_CONNECTIONS="5")
    clients = [RecordingClient(service.url) for _ in range(3)]
    try:
        error = refused_connection(service.url)
        assert error["data"]["code"] == "TOO_MANY_CONNECTIONS" and "your address" in error["message"]
        clients.pop().close()
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 2)
        clients.append(RecordingClient(service.url))  # a place is free again
        assert clients[-1].sio.connected
    finally:
        for client in clients:
            client.close()


def test_total_connections_are_limited(start_service) -> None:
    service = start_service(MAX_CONNECTIONS="2")
    clients = [RecordingClient(service.url) for _ in range(2)]
    try:
        error = refused_connection(service.url, transports=["polling"])
        assert error["data"]["code"] == "TOO_MANY_CONNECTIONS" and "full" in error["message"]
    finally:
        for client in clients:
            client.close()


def test_subscribe_flapping_does_not_flap_binance(start_service, fake_binance) -> None:
    grace = 2.0
    service = start_service(UNSUBSCRIBE_GRACE=str(grace), CLIENT_EVENT_BURST="100")
    client = RecordingClient(service.url)
    streams = {"xrpusdt@ticker", "dotusdt@ticker"}

    def requests_for(stream: str, method: str) -> list[dict]:
        return [m for _, m in fake_binance.control_messages()
                if isinstance(m, dict) and m.get("method") == method and stream in m.get("params", [])]

    try:
        for _ in range(29):
            client.emit("subscribe", {"symbols": ["XRPUSDT", "DOTUSDT"]})
            client.emit("unsubscribe", {"symbols": ["XRPUSDT", "DOTUSDT"]})
        client.emit("subscribe", {"symbols": ["XRPUSDT", "DOTUSDT"]})
        # the last client leaves when the service handles this unsubscribe: after it was sent, before its answer
        sent = time.time()
        client.call("unsubscribe", {"symbols": ["XRPUSDT", "DOTUSDT"]})
        answered = time.time()
        # the time the UNSUBSCRIBE first shows at the exchange, measured here by polling
        unsubscribed_at = wait_for(lambda: all(requests_for(s, "UNSUBSCRIBE") for s in streams) and time.time(),
                                   timeout=grace + 6, interval=0.01, message="the UNSUBSCRIBE after the grace period")
        assert unsubscribed_at - sent >= grace, (
            f"UNSUBSCRIBE {unsubscribed_at - sent:.2f}s after the last client left, before the {grace}s grace period")
        assert unsubscribed_at - answered <= grace + scaled(2.0), "and not long after it"
        wait_for(lambda: not streams & fake_binance.subscribed_streams(), timeout=6)
        for stream in streams:
            assert len(requests_for(stream, "SUBSCRIBE")) == 1, fake_binance.control_messages()
            assert len(requests_for(stream, "UNSUBSCRIBE")) == 1, fake_binance.control_messages()
        assert all(c.close_code is None for c in fake_binance.connections())
    finally:
        client.close()
