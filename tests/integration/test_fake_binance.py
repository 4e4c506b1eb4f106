"""The fake Binance USD-M futures exchange honours binance-facts.md, checked with real clients over 127.0.0.1.

Clients: websocket-client (raw frames where auto-pong must be avoided) and requests.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.fakes.binance import FakeBinance
from tests.fakes.protocol import is_valid_stream
from tests.fakes.rest import ANSWERED, BAN, BANNED, FORCED, IN_FLIGHT_GRACE, MAX_BAN_SECONDS, WEIGHT, Escalation
from tests.helpers import scaled, wait_for

REPO = Path(__file__).resolve().parent.parent.parent
DATA = REPO / "tests" / "data"
TICKER_SAMPLE = json.loads((DATA / "futures_ws_ticker.gocryptotrader-2026.jsonl").read_text().splitlines()[0])
MINI_SAMPLE = json.loads((DATA / "futures_ws_miniTicker.gocryptotrader-2026.jsonl").read_text().splitlines()[0])
TICKER_DECIMALS = ("p", "P", "w", "c", "Q", "o", "h", "l", "v", "q")
TICKER_INTEGERS = ("E", "O", "C", "F", "L", "n", "st")
REST_24HR_KEYS = ["symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "lastPrice", "lastQty",
                  "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume", "openTime", "closeTime",
                  "firstId", "lastId", "count"]
CORE = {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"}
TRAPS = {"BTCUSDT_260327", "XAUUSDT", "NEWCOINUSDT", "BTCUSDC"}
BAD_ID = "Invalid request: request ID must be an unsigned integer"


# ---------------------------------------------------------------- client helpers

@pytest.fixture
def make_fake() -> Iterator[Callable[..., FakeBinance]]:
    """Start FakeBinance instances with custom settings; all are stopped at teardown."""
    started: list[FakeBinance] = []

    def start(**settings: Any) -> FakeBinance:
        fake = FakeBinance(**settings).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def connect() -> Iterator[Callable[[str], websocket.WebSocket]]:
    """Open websocket-client connections; every one is closed at teardown."""
    opened: list[websocket.WebSocket] = []

    def open_(url: str) -> websocket.WebSocket:
        ws = websocket.create_connection(url, timeout=scaled(5.0))
        opened.append(ws)
        return ws

    yield open_
    for ws in opened:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.close(timeout=0.5)
        ws.shutdown()


def is_reply(message: Any) -> bool:
    return isinstance(message, dict) and ("result" in message or "error" in message)


def request(ws: websocket.WebSocket, payload: Any) -> dict[str, Any]:
    """Send a control request and return the next reply, skipping data frames."""
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    return next_matching(ws, is_reply)


def next_matching(ws: websocket.WebSocket, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if predicate(message):
            return message
    raise AssertionError(f"no matching frame within {timeout} s")


def read_until_closed(ws: websocket.WebSocket, timeout: float = 5.0) -> tuple[int | None, str, list[Any]]:
    """Read raw frames (never answering pings) until the server ends the connection.

    Returns (close code, close reason, decoded text frames); code None when the TCP connection ended with no
    close frame.
    """
    texts: list[Any] = []
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            frame = ws.recv_frame()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None, "", texts
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode("utf-8"), texts
        if frame.opcode == websocket.ABNF.OPCODE_TEXT:
            texts.append(json.loads(frame.data))
    raise AssertionError(f"the fake did not close the connection within {timeout} s")


def nothing_pending(ws: websocket.WebSocket) -> bool:
    """True when no frame is waiting on the socket (reads with a very short timeout)."""
    ws.settimeout(0.05)
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    finally:
        ws.settimeout(scaled(5.0))
    return False


def info(fake: FakeBinance, conn_id: int) -> Any:
    return next(conn for conn in fake.connections() if conn.id == conn_id)


def assert_ticker_shape(data: dict[str, Any]) -> None:
    assert list(data) == list(TICKER_SAMPLE["data"]), "24hrTicker keys must follow the 2026 wire order"
    for key in TICKER_DECIMALS:
        assert isinstance(data[key], str), f"{key} must be a decimal string"
        Decimal(data[key])
    for key in TICKER_INTEGERS:
        assert isinstance(data[key], int) and not isinstance(data[key], bool), f"{key} must be a number"
    assert data["n"] == data["L"] - data["F"] + 1
    assert data["C"] == data["E"] and data["O"] % 60_000 == 0 and data["E"] - data["O"] >= 86_400_000
    assert Decimal(data["l"]) <= Decimal(data["c"]) <= Decimal(data["h"])


# ---------------------------------------------------------------- WebSocket data

def test_market_stream_uses_the_combined_wrapper_and_decimal_strings(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    first = json.loads(ws.recv())
    assert list(first) == ["stream", "data"] and first["stream"] == "btcusdt@ticker"
    data = first["data"]
    assert_ticker_shape(data)
    assert (data["e"], data["s"], data["ps"], data["st"]) == ("24hrTicker", "BTCUSDT", "BTCUSDT", 1)
    assert len(data["c"].split(".")[1]) == 2 and len(data["Q"].split(".")[1]) == 3, "BTCUSDT precision"
    assert abs(data["E"] - time.time() * 1000) < 5000

    recorded = fake_binance.ticker("BTCUSDT")
    seen = [data]
    while seen[-1]["E"] < recorded["E"]:
        seen.append(json.loads(ws.recv())["data"])
    assert recorded in seen, "ticker() returns the payload the fake sent"
    assert fake_binance.ticker("NOSUCHUSDT") is None


def test_prices_walk_and_all_connections_see_the_same_tick(fake_binance, connect) -> None:
    one = connect(f"{fake_binance.ws_url}/market/stream?streams=ethusdt@ticker")
    two = connect(f"{fake_binance.ws_url}/market/ws/ethusdt@ticker")
    wait_for(lambda: len(fake_binance.open_connections()) == 2)
    frames_one = [json.loads(one.recv())["data"] for _ in range(6)]
    frames_two = [json.loads(two.recv()) for _ in range(6)]
    by_trade_id = {frame["L"]: frame["c"] for frame in frames_one}
    common = [frame for frame in frames_two if frame["L"] in by_trade_id]
    assert common, "both connections received frames of the same ticks"
    assert all(by_trade_id[frame["L"]] == frame["c"] for frame in common)
    assert len({frame["L"] for frame in frames_one}) == 6, "every tick trades"


def test_raw_ws_route_sends_bare_mini_tickers(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws/ethusdt@miniTicker")
    data = json.loads(ws.recv())
    assert list(data) == list(MINI_SAMPLE["data"])
    assert (data["e"], data["s"], data["st"]) == ("24hrMiniTicker", "ETHUSDT", 1)
    assert all(isinstance(data[key], str) for key in ("c", "o", "h", "l", "v", "q"))


def test_all_market_ticker_array_includes_a_coin_m_row(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=!ticker@arr")
    frame = json.loads(ws.recv())
    assert frame["stream"] == "!ticker@arr" and isinstance(frame["data"], list)
    rows = {row["s"]: row for row in frame["data"]}
    assert rows["BTCUSD_PERP"]["st"] == 2 and rows["BTCUSD_PERP"]["ps"] == "BTCUSD"
    usd_m = {symbol for symbol, row in rows.items() if row["st"] == 1}
    assert usd_m == fake_binance.known_symbols() and TRAPS <= usd_m
    for row in frame["data"]:
        assert_ticker_shape(row)


def test_public_route_carries_book_ticker(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/public/ws/btcusdt@bookTicker")
    data = json.loads(ws.recv())
    assert (data["e"], data["s"], data["st"]) == ("bookTicker", "BTCUSDT", 1)
    assert Decimal(data["b"]) < Decimal(data["a"])


AGG_TRADE_KEYS = ["e", "E", "a", "s", "p", "q", "nq", "f", "l", "T", "m", "st"]  # the 2026 wire order


def test_market_route_carries_agg_trades_that_continue_one_another(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade")
    frames = [json.loads(ws.recv()) for _ in range(6)]
    trades = [frame["data"] for frame in frames if frame["stream"] == "btcusdt@aggTrade"]
    assert len(trades) >= 2 and {frame["stream"] for frame in frames} == {"btcusdt@aggTrade", "ethusdt@aggTrade"}
    for data in trades:
        assert list(data) == AGG_TRADE_KEYS
        assert (data["e"], data["s"], data["st"]) == ("aggTrade", "BTCUSDT", 1) and isinstance(data["m"], bool)
        assert all(isinstance(data[key], str) for key in ("p", "q", "nq")) and Decimal(data["q"]) > 0
        assert data["f"] <= data["l"] and data["T"] <= data["E"]
    for before, after in zip(trades, trades[1:]):  # each trade takes up the fills where the previous one ended
        assert after["a"] == before["a"] + 1 and after["f"] == before["l"] + 1
    sent = fake_binance.trades_sent("BTCUSDT")
    assert [row["a"] for row in sent][:len(trades)] == [row["a"] for row in trades]


def test_agg_trades_and_book_tickers_are_refused_on_the_other_route(fake_binance, connect) -> None:
    """One connection serves one route (facts §1): aggTrade only on /market, bookTicker only on /public."""
    for path in ("/public/ws/btcusdt@aggTrade", "/market/ws/btcusdt@bookTicker"):
        ws = connect(fake_binance.ws_url + path)
        ws.settimeout(1.0)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()


def test_rest_book_ticker_as_documented(fake_binance) -> None:
    base = fake_binance.rest_url
    for _attempt in range(2):  # the weight resets at a clock-minute boundary; retry once if it fell in between
        one = requests.get(f"{base}/fapi/v1/ticker/bookTicker", params={"symbol": "BTCUSDT"}, timeout=5)
        every = requests.get(f"{base}/fapi/v1/ticker/bookTicker", timeout=5)
        if int(every.headers["X-MBX-USED-WEIGHT-1M"]) - int(one.headers["X-MBX-USED-WEIGHT-1M"]) == 5:
            break
    body = one.json()
    assert list(body) == ["symbol", "bidPrice", "bidQty", "askPrice", "askQty", "time"]
    assert body["symbol"] == "BTCUSDT" and Decimal(body["bidPrice"]) < Decimal(body["askPrice"])
    assert {row["symbol"] for row in every.json()} == fake_binance.known_symbols()
    unknown = requests.get(f"{base}/fapi/v1/ticker/bookTicker", params={"symbol": "NOPEUSDT"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_rest_agg_trades_are_the_streamed_trades(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.05)
    ws = connect(f"{fake.ws_url}/market/ws/btcusdt@aggTrade")
    streamed = [json.loads(ws.recv()) for _ in range(5)]
    fake.set_tick_interval(3600)  # no trade from now on: the answers below see one tape
    base = f"{fake.rest_url}/fapi/v1/aggTrades"
    rows = requests.get(base, params={"symbol": "BTCUSDT", "limit": "1000"}, timeout=5).json()
    by_id = {row["a"]: row for row in rows}
    for trade in streamed:  # the same trades, with the documented fields only
        assert by_id[trade["a"]] == {key: trade[key] for key in ("a", "p", "q", "f", "l", "T", "m")}
    assert [row["a"] for row in rows] == sorted(row["a"] for row in rows)
    last_two = requests.get(base, params={"symbol": "BTCUSDT", "limit": "2"}, timeout=5).json()
    assert last_two == rows[-2:]
    first = streamed[0]["a"]
    from_id = requests.get(base, params={"symbol": "BTCUSDT", "fromId": str(first), "limit": "3"}, timeout=5).json()
    assert [row["a"] for row in from_id] == [first, first + 1, first + 2]
    default = requests.get(base, params={"symbol": "BTCUSDT"}, timeout=5)
    assert default.status_code == 200 and len(default.json()) <= 500
    for params, code in (({}, -1102), ({"symbol": "BTCUSDT", "limit": "1001"}, -1130),
                         ({"symbol": "BTCUSDT", "limit": "0"}, -1130), ({"symbol": "BTCUSDT", "fromId": "x"}, -1130),
                         ({"symbol": "NOPEUSDT"}, -1121)):
        refused = requests.get(base, params=params, timeout=5)
        assert refused.status_code == 400 and refused.json()["code"] == code, (params, refused.text)
    assert int(default.headers["X-MBX-USED-WEIGHT-1M"]) >= 20


@pytest.mark.parametrize(("path", "stream"), [
    ("/stream?streams=btcusdt@ticker", "ethusdt@ticker"),  # the un-routed legacy URL (facts §1)
    ("/ws/btcusdt@ticker", "!ticker@arr"),
    ("/public/stream?streams=btcusdt@ticker", "ethusdt@miniTicker"),  # /market streams on the wrong route
    ("/market/stream?streams=nosuchusdt@ticker", "nosuchusdt@miniTicker"),  # unknown symbol (facts §3)
])
def test_streams_off_their_route_are_acknowledged_and_silent(fake_binance, connect, path, stream) -> None:
    ws = connect(fake_binance.ws_url + path)
    assert request(ws, {"method": "SUBSCRIBE", "params": [stream], "id": 1}) == {"result": None, "id": 1}
    ticks = fake_binance.tick_count()
    wait_for(lambda: fake_binance.tick_count() >= ticks + 3, message="three ticks")
    assert nothing_pending(ws), f"{path} must never deliver data"
    assert fake_binance.open_connections()[0].open


def test_set_silent_stops_data_but_keeps_acks(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    json.loads(ws.recv())
    fake_binance.set_silent(True)
    ticks = fake_binance.tick_count()
    wait_for(lambda: fake_binance.tick_count() >= ticks + 2)
    while not nothing_pending(ws):  # frames already in flight when silence began
        pass
    ticks = fake_binance.tick_count()
    wait_for(lambda: fake_binance.tick_count() >= ticks + 3)
    assert nothing_pending(ws)
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 5}) == {"result": ["btcusdt@ticker"], "id": 5}
    fake_binance.set_silent(False)
    assert json.loads(ws.recv())["stream"] == "btcusdt@ticker"


# ---------------------------------------------------------------- live subscription API

def test_subscribe_unsubscribe_and_list(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 0}) == {"result": [], "id": 0}
    subscribe = {"method": "SUBSCRIBE", "params": ["btcusdt@ticker", "ethusdt@ticker"], "id": 1}
    assert request(ws, subscribe) == {"result": None, "id": 1}
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}) == {
        "result": ["btcusdt@ticker", "ethusdt@ticker"], "id": 2}
    symbols = set()
    while symbols != {"BTCUSDT", "ETHUSDT"}:
        symbols.add(next_matching(ws, lambda m: not is_reply(m))["s"])
    assert fake_binance.subscribed_streams() == {"btcusdt@ticker", "ethusdt@ticker"}

    assert request(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@ticker"], "id": 3}) == {"result": None, "id": 3}
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4}) == {"result": ["ethusdt@ticker"], "id": 4}
    assert fake_binance.subscribed_streams() == {"ethusdt@ticker"}
    conn_id = fake_binance.connections()[0].id
    assert fake_binance.control_messages()[1] == (conn_id, subscribe)


def test_url_streams_count_as_subscribed(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker/!ticker@arr")
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 7}) == {
        "result": ["btcusdt@ticker", "!ticker@arr"], "id": 7}
    (conn,) = fake_binance.open_connections()
    assert (conn.route, conn.path, conn.query) == ("market", "/market/stream", "streams=btcusdt@ticker/!ticker@arr")


def test_set_property_combined_wraps_raw_frames(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws/btcusdt@ticker")
    assert request(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 1}) == {"result": None, "id": 1}
    assert request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {"result": True, "id": 2}
    assert next_matching(ws, lambda m: "stream" in m)["stream"] == "btcusdt@ticker"


@pytest.mark.parametrize("bad_id", ["1", -1, 1.5, True, None, 2**64])
def test_request_id_must_be_an_unsigned_integer(fake_binance, connect, bad_id) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    payload: dict[str, Any] = {"method": "SUBSCRIBE", "params": ["btcusdt@ticker"]}
    if bad_id is not None:
        payload["id"] = bad_id
    assert request(ws, payload) == {"error": {"code": 2, "msg": BAD_ID}, "id": bad_id}
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}


@pytest.mark.parametrize("bad_stream", ["BTCUSDT@ticker", "btcusdt@tick", "btcusdt", "!ticker", "btcusdt@kline_7m",
                                        "btcusdt@minitickeR", ""])
def test_an_invalid_stream_rejects_the_whole_request(fake_binance, connect, bad_stream) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    reply = request(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@ticker", bad_stream], "id": 9})
    assert reply == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 9}
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 10}) == {"result": [], "id": 10}


def test_malformed_requests_get_code_2_errors(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    unknown = request(ws, {"method": "subscribe", "params": [], "id": 1})
    assert unknown["error"]["code"] == 2 and "unknown variant `subscribe`" in unknown["error"]["msg"]
    not_list = request(ws, {"method": "SUBSCRIBE", "params": "btcusdt@ticker", "id": 2})
    assert not_list["error"]["code"] == 2 and not_list["id"] == 2
    not_strings = request(ws, {"method": "SUBSCRIBE", "params": [1], "id": 3})
    assert not_strings["error"]["code"] == 2
    assert request(ws, {"id": 4})["error"]["msg"] == "Invalid request: missing field `method`"
    assert fake_binance.open_connections(), "code 2 errors keep the connection"


@pytest.mark.parametrize("name", ["btcusdt@ticker", "1000shibusdt@miniTicker", "btcusdt_260327@aggTrade",
                                  "btcusdt@markPrice@1s", "btcusdt@kline_1M", "btcusdt@depth20@100ms",
                                  "btcusdt@forceOrder", "!ticker@arr", "!miniTicker@arr", "!bookTicker",
                                  "!markPrice@arr@1s"])
def test_valid_stream_names(name) -> None:
    assert is_valid_stream(name)


@pytest.mark.parametrize("payload", ["not json", b"\x00binary"])
def test_invalid_json_gets_code_3_and_a_close(fake_binance, connect, payload) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    if isinstance(payload, bytes):
        ws.send_binary(payload)
    else:
        ws.send(payload)
    code, _, texts = read_until_closed(ws)
    assert texts and texts[0]["error"]["code"] == 3 and texts[0]["error"]["msg"].startswith("Invalid JSON")
    assert list(texts[0]) == ["error"], "Binance sends no id with code 3"
    assert code == 1008
    if isinstance(payload, str):
        documented = json.loads((DATA / "ws_control_frames.jsonl").read_text().splitlines()[3])
        assert texts[0] == documented
        assert fake_binance.control_messages()[0][1] == "not json"


# ---------------------------------------------------------------- limits and lifecycle

@pytest.mark.parametrize("kind", ["text", "ping", "pong"])
def test_more_than_ten_frames_a_second_closes_1008(fake_binance, connect, kind) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    for n in range(11):
        if kind == "text":
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": n}))
        elif kind == "ping":
            ws.ping(b"p")
        else:
            ws.pong(b"p")
    code, reason, texts = read_until_closed(ws)
    assert (code, reason) == (1008, "Too many requests")
    conn = wait_for(lambda: not fake_binance.connections()[0].open and fake_binance.connections()[0])
    assert (conn.close_code, conn.received) == (1008, 11)
    if kind == "text":
        assert len([t for t in texts if is_reply(t)]) == 10, "the eleventh request is not answered"
        assert [m["id"] for _, m in fake_binance.control_messages()] == list(range(11)), "but it is recorded"


def test_ten_frames_a_second_are_allowed(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    for n in range(10):
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": n})["id"] == n
    assert fake_binance.open_connections()


def test_too_many_streams_in_the_url_closes_1008(make_fake, connect) -> None:
    fake = make_fake(max_streams=5, tick_interval=0.2)
    streams = "/".join(f"{s}@ticker" for s in ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "adausdt", "xrpusdt"))
    ws = connect(f"{fake.ws_url}/market/stream?streams={streams}")
    assert read_until_closed(ws)[:2] == (1008, "Too many streams")


def test_too_many_streams_by_subscribe_closes_1008(make_fake, connect) -> None:
    fake = make_fake(max_streams=5, tick_interval=0.2)
    ws = connect(f"{fake.ws_url}/market/stream?streams=btcusdt@ticker/ethusdt@ticker")
    ok = {"method": "SUBSCRIBE", "params": ["bnbusdt@ticker", "solusdt@ticker", "btcusdt@ticker"], "id": 1}
    assert request(ws, ok) == {"result": None, "id": 1}
    assert request(ws, {"method": "SUBSCRIBE", "params": ["adausdt@ticker"], "id": 2}) == {"result": None, "id": 2}
    assert len(request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})["result"]) == 5, "five is within the limit"
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["xrpusdt@ticker"], "id": 4}))
    code, reason, texts = read_until_closed(ws)
    assert (code, reason) == (1008, "Too many streams")
    assert not [t for t in texts if is_reply(t)]
    assert wait_for(lambda: fake.connections()[0].close_code) == 1008


def test_server_pings_and_closes_a_client_that_never_pongs(make_fake, connect) -> None:
    fake = make_fake(ping_interval=0.3, pong_timeout=1.0, tick_interval=30)
    silent = connect(f"{fake.ws_url}/market/ws")
    polite = connect(f"{fake.ws_url}/market/ws")
    silent.settimeout(0.05)
    polite.settimeout(0.05)
    pings: list[bytes] = []
    answered = 0
    closed: tuple[int, str] | None = None
    started = time.monotonic()
    deadline = started + scaled(5.0)
    while time.monotonic() < deadline and (closed is None or answered < 6):
        if closed is None:
            with contextlib.suppress(websocket.WebSocketTimeoutException):
                frame = silent.recv_frame()  # raw: no automatic pong
                if frame.opcode == websocket.ABNF.OPCODE_PING:
                    pings.append(frame.data)
                elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                    closed = (int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode())
                    closed_after = time.monotonic() - started
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            opcode, _ = polite.recv_data_frame(control_frame=True)  # answers pings with echoing pongs
            answered += opcode == websocket.ABNF.OPCODE_PING
    assert closed is not None and closed[0] in (1008, 1011) and closed[1] == "Pong timeout"
    assert 1.0 <= closed_after < scaled(3.0)
    assert pings and all(payload.isdigit() for payload in pings), "ping payload is the ms time"
    assert answered >= 6, "six pings answered spans more than the pong timeout"
    assert [conn.id for conn in fake.open_connections()] == [2], "the ponging client stays connected"


def test_connection_lifetime_ends_with_1001_going_away(make_fake, connect) -> None:
    fake = make_fake(connection_lifetime=1.0, tick_interval=30)
    started = time.monotonic()
    ws = connect(f"{fake.ws_url}/market/stream?streams=btcusdt@ticker")
    assert read_until_closed(ws)[:2] == (1001, "going away")
    assert time.monotonic() - started >= 1.0
    conn = wait_for(lambda: not fake.connections()[0].open and fake.connections()[0])
    assert (conn.close_code, conn.close_reason) == (1001, "going away")
    assert conn.closed_at - conn.opened_at >= 1.0


def test_drop_all_aborts_without_a_close_frame(fake_binance, connect) -> None:
    sockets = [connect(f"{fake_binance.ws_url}/market/ws"), connect(f"{fake_binance.ws_url}/public/ws")]
    wait_for(lambda: len(fake_binance.open_connections()) == 2)
    assert fake_binance.drop_all() == 2
    assert fake_binance.open_connections() == []
    for ws in sockets:
        assert read_until_closed(ws)[0] is None, "no close frame on a dropped connection"
    assert [conn.close_code for conn in fake_binance.connections()] == [1006, 1006]
    assert fake_binance.drop_all() == 0


def test_close_all_sends_the_given_close_frame(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    wait_for(fake_binance.open_connections)
    assert fake_binance.close_all(4000, "maintenance") == 1
    assert read_until_closed(ws)[:2] == (4000, "maintenance")
    assert fake_binance.subscribed_streams() == set()
    with pytest.raises(ValueError, match="1006"):
        fake_binance.close_all(1006, "not sendable")


def test_stop_closes_connections_with_1001(make_fake, connect) -> None:
    fake = make_fake(tick_interval=30)
    ws = connect(f"{fake.ws_url}/market/ws")
    wait_for(fake.open_connections)
    fake.stop()
    assert read_until_closed(ws)[:2] == (1001, "going away")
    fake.stop()  # idempotent


def test_bad_urls_are_refused_at_the_handshake(fake_binance) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{fake_binance.ws_url}/market/stream?streams=BTCUSDT@ticker", timeout=5)
    assert refused.value.status_code == 400
    assert requests.get(f"{fake_binance.rest_url}/market/stream", timeout=5).status_code == 400
    assert fake_binance.connections() == []


# ---------------------------------------------------------------- REST

def test_rest_ticker_24hr_and_price_agree_with_the_market(make_fake) -> None:
    fake = make_fake(tick_interval=60)  # no tick during the test: one market state
    ticker = requests.get(f"{fake.rest_url}/fapi/v1/ticker/24hr", params={"symbol": "BTCUSDT"}, timeout=5)
    assert ticker.status_code == 200
    body = ticker.json()
    assert list(body) == REST_24HR_KEYS
    assert all(isinstance(body[key], str) for key in REST_24HR_KEYS[1:11])
    assert all(isinstance(body[key], int) for key in REST_24HR_KEYS[11:])
    assert body["count"] == body["lastId"] - body["firstId"] + 1
    assert Decimal(body["lastPrice"]) - Decimal(body["openPrice"]) == Decimal(body["priceChange"])
    price = requests.get(f"{fake.rest_url}/fapi/v1/ticker/price", params={"symbol": "BTCUSDT"}, timeout=5).json()
    assert list(price) == ["symbol", "price", "time"] and price["price"] == body["lastPrice"]
    everything = requests.get(f"{fake.rest_url}/fapi/v1/ticker/24hr", timeout=5).json()
    assert {row["symbol"] for row in everything} == fake.known_symbols()
    assert fake.rest_requests()[0] == ("/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"})


@pytest.mark.parametrize(("symbol", "code"), [("NOSUCHUSDT", -1121), ("BTCUSD_PERP", -1121), ("btcusdt", -1100)])
def test_rest_rejects_bad_symbols_with_400(fake_binance, symbol, code) -> None:
    for path in ("/fapi/v1/ticker/24hr", "/fapi/v1/ticker/price"):
        answer = requests.get(f"{fake_binance.rest_url}{path}", params={"symbol": symbol}, timeout=5)
        assert answer.status_code == 400 and answer.json()["code"] == code
    if code == -1121:
        assert answer.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_exchange_info_carries_the_traps(fake_binance) -> None:
    before = int(time.time() * 1000)
    body = requests.get(f"{fake_binance.rest_url}/fapi/v1/exchangeInfo", timeout=5).json()
    assert body["serverTime"] >= before
    symbols = {entry["symbol"]: entry for entry in body["symbols"]}
    expected = {
        "BTCUSDT_260327": ("CURRENT_QUARTER", "USDT", "TRADING"),
        "XAUUSDT": ("TRADIFI_PERPETUAL", "USDT", "TRADING"),
        "NEWCOINUSDT": ("PERPETUAL", "USDT", "PENDING_TRADING"),
        "BTCUSDC": ("PERPETUAL", "USDC", "TRADING"),
        **{symbol: ("PERPETUAL", "USDT", "TRADING") for symbol in CORE},
    }
    for symbol, kind in expected.items():
        entry = symbols[symbol]
        assert (entry["contractType"], entry["quoteAsset"], entry["status"]) == kind, symbol
    perpetuals = {s for s, e in symbols.items()
                  if (e["contractType"], e["quoteAsset"], e["status"]) == ("PERPETUAL", "USDT", "TRADING")}
    assert perpetuals == fake_binance.perpetual_symbols() and CORE <= perpetuals and not TRAPS & perpetuals
    assert set(symbols) == fake_binance.known_symbols()


def test_ping_time_and_the_weight_header(fake_binance) -> None:
    base = fake_binance.rest_url
    for _attempt in range(2):  # a clock-minute boundary resets the weight; retry once if it fell in between
        ping = requests.get(f"{base}/fapi/v1/ping", timeout=5)
        clock = requests.get(f"{base}/fapi/v1/time", timeout=5)
        everything = requests.get(f"{base}/fapi/v1/ticker/24hr", timeout=5)
        weights = [int(r.headers["X-MBX-USED-WEIGHT-1M"]) for r in (ping, clock, everything)]
        if weights[2] - weights[0] == 41:
            break
    assert ping.json() == {} and abs(clock.json()["serverTime"] - time.time() * 1000) < 5000
    assert weights[1] == weights[0] + 1 and weights[2] == weights[1] + 40
    missing = requests.get(f"{base}/fapi/v1/nothing", timeout=5)
    assert missing.status_code == 404 and "X-MBX-USED-WEIGHT-1M" in missing.headers
    assert requests.get(f"{base}/elsewhere", timeout=5).status_code == 404


def test_weight_over_the_limit_answers_429(make_fake) -> None:
    fake = make_fake(rest_weight_limit=3, tick_interval=60)
    for _attempt in range(2):  # see the minute-boundary note above
        answers = [requests.get(f"{fake.rest_url}/fapi/v1/ping", timeout=5) for _ in range(4)]
        if [a.status_code for a in answers] == [200, 200, 200, 429]:
            break
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["code"] == -1003 and 1 <= int(answers[3].headers["Retry-After"]) <= 60
    limited_at = fake.rest_calls()[-1].at
    in_flight = requests.get(f"{fake.rest_url}/fapi/v1/ping", timeout=5)  # sent as the 429 left: no ban yet
    assert in_flight.status_code == 429 and fake.rest_calls()[-1].at < limited_at + IN_FLIGHT_GRACE
    past_grace(fake)
    banned = requests.get(f"{fake.rest_url}/fapi/v1/ping", timeout=5)
    assert banned.status_code == 418 and banned.headers["Retry-After"] == "120", "the default ban: 2 minutes"
    assert [call.cause for call in fake.rest_calls()][-3:] == [WEIGHT, WEIGHT, BAN]


def past_grace(fake: FakeBinance) -> None:
    """Wait until the fake's last answer is older than the in-flight grace of rest.Escalation."""
    last = fake.rest_calls()[-1].at
    wait_for(lambda: time.time() > last + IN_FLIGHT_GRACE * 1.1, timeout=2 * IN_FLIGHT_GRACE)


@pytest.mark.parametrize("status", [429, 418])
def test_calling_again_inside_retry_after_earns_418_and_a_ban(make_fake, status: int) -> None:
    fake = make_fake(tick_interval=60, rest_ban_seconds=1)
    url = f"{fake.rest_url}/fapi/v1/ticker/price?symbol=BTCUSDT"
    fake.set_rest_failure(status, retry_after=30)
    assert requests.get(url, timeout=5).status_code == status
    past_grace(fake)
    banned = requests.get(url, timeout=5)
    assert (banned.status_code, banned.headers["Retry-After"], banned.json()["code"]) == (418, "1", -1003)
    assert "X-MBX-USED-WEIGHT-1M" in banned.headers
    fake.set_rest_failure(None)
    assert requests.get(url, timeout=5).status_code == 418, "the ban outlasts the failure that earned it"
    wait_for(lambda: requests.get(url, timeout=5).status_code == 200, timeout=3)
    calls = fake.rest_calls()
    assert [c.cause for c in calls[:3]] == [FORCED, BAN, BANNED] and calls[-1].cause == ANSWERED
    assert [(c.status, c.retry_after) for c in calls[:2]] == [(status, 30), (418, 1)]
    assert all(c.method == "GET" and c.path == "/fapi/v1/ticker/price" for c in calls)
    assert [c.at for c in calls] == sorted(c.at for c in calls) and calls[0].query == {"symbol": "BTCUSDT"}


def test_calling_after_retry_after_is_no_offence(make_fake) -> None:
    fake = make_fake(tick_interval=60, rest_ban_seconds=60)
    url = f"{fake.rest_url}/fapi/v1/ping"
    fake.set_rest_failure(429, retry_after=1)
    assert requests.get(url, timeout=5).status_code == 429
    limited_at = fake.rest_calls()[-1].at
    wait_for(lambda: time.time() > limited_at + 1.05, timeout=2)
    assert requests.get(url, timeout=5).status_code == 429, "the forced 429 again, not a ban"
    assert [c.cause for c in fake.rest_calls()] == [FORCED, FORCED]


def test_bans_double_for_repeat_offenders_up_to_three_days() -> None:
    escalation, now, lengths = Escalation(ban_seconds=120, grace=0.5), 1000.0, []
    assert escalation.judge(now) is None
    escalation.answered(200, None, now)
    escalation.answered(503, 5, now)
    assert escalation.judge(now + 1) is None, "only a 429 or 418 opens a Retry-After window"
    escalation.answered(429, None, now)
    assert escalation.judge(now + 1) is None, "a 429 without Retry-After says nothing to honour"
    for _ in range(14):
        escalation.answered(429, 10, now)
        assert escalation.judge(now + 0.4) is None, "in flight when the 429 left"
        cause, answer = escalation.judge(now + 1)  # type: ignore[misc]
        assert (cause, answer.status) == (BAN, 418)
        lengths.append(int(answer.headers["Retry-After"]))
        cause, answer = escalation.judge(now + 1 + lengths[-1] / 2)  # type: ignore[misc]
        assert cause == BANNED and int(answer.headers["Retry-After"]) == math.ceil(lengths[-1] / 2)
        now += 1 + lengths[-1]
        assert escalation.judge(now) is None, "the ban is over, and it closed the window it punished"
        now += 20
    assert lengths[:4] == [120, 240, 480, 960] and lengths[-1] == MAX_BAN_SECONDS == 3 * 86400


def test_forced_rest_failures(fake_binance) -> None:
    url = f"{fake_binance.rest_url}/fapi/v1/ticker/24hr?symbol=BTCUSDT"
    fake_binance.set_rest_failure(503)
    failing = requests.get(url, timeout=5)
    assert (failing.status_code, failing.json()["code"]) == (503, -1001) and "Retry-After" not in failing.headers
    fake_binance.set_rest_failure(418, {"code": -1003, "msg": "banned"})
    assert requests.get(url, timeout=5).json() == {"code": -1003, "msg": "banned"}
    fake_binance.set_rest_failure(None)
    assert requests.get(url, timeout=5).status_code == 200
    fake_binance.set_rest_failure(429, retry_after=7)  # last: calling again within 7 s would earn a ban
    limited = requests.get(url, timeout=5)
    assert (limited.status_code, limited.headers["Retry-After"], limited.json()["code"]) == (429, "7", -1003)
    assert "X-MBX-USED-WEIGHT-1M" in limited.headers


def exchange_info_entries(fake: FakeBinance) -> dict[str, dict[str, Any]]:
    body = requests.get(f"{fake.rest_url}/fapi/v1/exchangeInfo", timeout=5).json()
    return {entry["symbol"]: entry for entry in body["symbols"]}


def test_listing_and_delisting_change_exchange_info_and_the_market(fake_binance, connect) -> None:
    fake_binance.list_symbol("NEWLYUSDT")
    entry = exchange_info_entries(fake_binance)["NEWLYUSDT"]
    assert (entry["contractType"], entry["quoteAsset"], entry["status"], entry["baseAsset"]) == (
        "PERPETUAL", "USDT", "TRADING", "NEWLY")
    assert "NEWLYUSDT" in fake_binance.perpetual_symbols()
    # the new symbol ticks: on its stream, in the all-market array and in REST
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=newlyusdt@ticker/!ticker@arr")
    single = next_matching(ws, lambda m: m.get("stream") == "newlyusdt@ticker")["data"]
    assert_ticker_shape(single)
    assert single["s"] == "NEWLYUSDT" and fake_binance.ticker("NEWLYUSDT") is not None
    array = next_matching(ws, lambda m: m.get("stream") == "!ticker@arr")["data"]
    assert "NEWLYUSDT" in {row["s"] for row in array}
    rest = requests.get(f"{fake_binance.rest_url}/fapi/v1/ticker/24hr", params={"symbol": "NEWLYUSDT"}, timeout=5)
    assert rest.status_code == 200 and rest.json()["symbol"] == "NEWLYUSDT"

    fake_binance.delist("XRPUSDT")
    assert exchange_info_entries(fake_binance)["XRPUSDT"]["status"] == "SETTLING"
    assert "XRPUSDT" not in fake_binance.perpetual_symbols() and "XRPUSDT" in fake_binance.known_symbols()
    fake_binance.list_symbol("XRPUSDT")  # trading again
    assert exchange_info_entries(fake_binance)["XRPUSDT"]["status"] == "TRADING"
    with pytest.raises(ValueError, match="ending in USDT"):
        fake_binance.list_symbol("newly")
    with pytest.raises(ValueError, match="not in the fake's exchangeInfo"):
        fake_binance.delist("NOSUCHUSDT")


def test_http_control_lists_and_delists(fake_binance) -> None:
    base = f"{fake_binance.rest_url}/_fake"
    listed = requests.post(f"{base}/list", params={"symbol": "HTTPCOINUSDT"}, timeout=5)
    assert listed.json() == {"symbol": "HTTPCOINUSDT", "perpetual": True}
    assert exchange_info_entries(fake_binance)["HTTPCOINUSDT"]["status"] == "TRADING"
    delisted = requests.post(f"{base}/delist", params={"symbol": "HTTPCOINUSDT"}, timeout=5)
    assert delisted.json() == {"symbol": "HTTPCOINUSDT", "perpetual": False}
    assert exchange_info_entries(fake_binance)["HTTPCOINUSDT"]["status"] == "SETTLING"
    assert requests.post(f"{base}/delist", params={"symbol": "NOSUCHUSDT"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/list", timeout=5).status_code == 400


# ---------------------------------------------------------------- fault hooks

def try_connect(connect: Callable[[str], websocket.WebSocket], url: str) -> websocket.WebSocket | None:
    """A connection opened with the `connect` fixture, or None when the handshake is refused with HTTP 503."""
    try:
        return connect(url)
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 503
        return None


def next_raw(ws: websocket.WebSocket, predicate: Callable[[int, bytes], bool], timeout: float = 5.0) -> bytes:
    """The data of the next text or binary frame (opcode, data) that `predicate` accepts."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        opcode, data = ws.recv_data()
        if predicate(opcode, data):
            return data
    raise AssertionError(f"no matching frame within {timeout} s")


def data_after(ws: websocket.WebSocket, since_ms: float, count: int) -> list[dict[str, Any]]:
    """The next `count` combined data frames of ticks that happened after `since_ms` (older ones are skipped)."""
    frames: list[dict[str, Any]] = []
    while len(frames) < count:
        frame = next_matching(ws, lambda m: not is_reply(m))
        rows = frame["data"] if isinstance(frame["data"], list) else [frame["data"]]
        if rows[0]["E"] > since_ms:
            frames.append(frame)
    return frames


def test_refused_handshakes_get_503_while_rest_and_open_connections_work(fake_binance, connect) -> None:
    url = f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker"
    ws = connect(url)
    fake_binance.refuse_connections(30)
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=scaled(5.0))
        assert refused.value.status_code == 503 and json.loads(refused.value.resp_body)["code"] == -1001
    assert requests.get(f"{fake_binance.rest_url}/fapi/v1/ping", timeout=5).json() == {}
    assert json.loads(ws.recv())["stream"] == "btcusdt@ticker", "the open connection still gets data"
    assert [conn.id for conn in fake_binance.open_connections()] == [1] and len(fake_binance.connections()) == 1
    attempts, refused_at = fake_binance.connection_attempts(), fake_binance.refused_attempts()
    assert len(attempts) == 3 and refused_at == attempts[1:] and refused_at == sorted(refused_at)
    fake_binance.refuse_connections(0)
    connect(url)
    assert len(fake_binance.connection_attempts()) == 4 and len(fake_binance.refused_attempts()) == 2


def test_refusal_ends_after_its_window(fake_binance, connect) -> None:
    url = f"{fake_binance.ws_url}/market/ws"
    before = time.time()
    fake_binance.refuse_connections(0.4)
    after = time.time()
    wait_for(lambda: try_connect(connect, url), interval=0.05, message="a handshake accepted again")
    refused_at = fake_binance.refused_attempts()
    assert refused_at and all(at - after < 0.4 for at in refused_at)
    assert fake_binance.connection_attempts()[-1] - before >= 0.4
    assert len(fake_binance.connection_attempts()) == len(refused_at) + 1


def refused_with(status: int, url: str) -> websocket.WebSocketBadStatusException:
    """The exception of a handshake to `url` that the fake refuses with HTTP `status`."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=scaled(5.0)).close()
    assert refused.value.status_code == status, refused.value
    return refused.value


def test_connection_attempts_over_the_per_ip_limit_get_429(make_fake, connect) -> None:
    fake = make_fake(max_connections_per_window=3, connection_window=1.5)
    url = f"{fake.ws_url}/market/stream?streams=btcusdt@ticker"
    first = connect(url)
    started = time.monotonic()
    connect(url), connect(url)
    refused = refused_with(429, url)
    body = json.loads(refused.resp_body)
    assert body["code"] == -1003 and "3 connection attempts in 1.5 s" in body["msg"]
    assert 1 <= int(refused.resp_headers["retry-after"]) <= 2
    refused_with(429, url)  # a refused attempt counts too: hammering keeps the door shut
    assert len(fake.rate_limited_attempts()) == 2 and fake.refused_attempts() == []
    assert fake.rate_limited_attempts() == fake.connection_attempts()[3:]
    assert json.loads(first.recv())["stream"] == "btcusdt@ticker", "open connections are untouched"
    assert requests.get(f"{fake.rest_url}/fapi/v1/ping", timeout=5).json() == {}
    wait_for(lambda: try_connect(connect, url), timeout=5, interval=0.1, message="accepted once the window slid")
    assert time.monotonic() - started >= 1.5
    state = fake.state()
    assert state["connection_limit"] == {"attempts": 3, "window": 1.5}
    assert state["rate_limited_attempts"] == fake.rate_limited_attempts()
    with pytest.raises(ValueError, match="max_connections_per_window"):
        FakeBinance(max_connections_per_window=0)
    with pytest.raises(ValueError, match="connection_window"):
        FakeBinance(connection_window=0)


def test_connection_attempt_limit_is_per_ip(make_fake, connect) -> None:
    fake = make_fake(max_connections_per_window=1, connection_window=60)
    connect(f"{fake.ws_url}/market/ws")
    refused_with(429, f"{fake.ws_url}/market/ws")
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=scaled(5.0), source_address=("127.0.0.2", 0))
    ws = websocket.create_connection(f"{fake.ws_url}/market/ws", socket=sock, timeout=scaled(5.0))
    try:
        wait_for(lambda: len(fake.open_connections()) == 2, message="another address has its own allowance")
    finally:
        ws.close()


def test_withheld_replies_are_recorded_but_never_applied_nor_answered(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    fake_binance.withhold_replies(True)
    assert fake_binance.state()["withholding_replies"] is True
    lost = [{"method": "SUBSCRIBE", "params": ["ethusdt@ticker"], "id": 1}, {"method": "LIST_SUBSCRIPTIONS", "id": 2},
            "not json {"]
    for message in lost:
        ws.send(message if isinstance(message, str) else json.dumps(message))
    wait_for(lambda: len(fake_binance.control_messages()) == 3)
    assert [m for _, m in fake_binance.control_messages()] == lost
    assert json.loads(ws.recv())["stream"] == "btcusdt@ticker", "data still flows, the connection stays open"
    fake_binance.withhold_replies(False)
    # the fake handles frames in order: the first reply after the lost ones answers the next request
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3}) == {"result": ["btcusdt@ticker"], "id": 3}
    assert fake_binance.subscribed_streams() == {"btcusdt@ticker"}
    assert fake_binance.open_connections()[0].close_code is None


def test_control_messages_carry_their_arrival_times(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/ws")
    before = time.time()
    for request_id in range(3):
        request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    after = time.time()
    timed = fake_binance.timed_control_messages()
    assert [(conn, m) for conn, _, m in timed] == fake_binance.control_messages()
    times = [at for _, at, _ in timed]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after


def test_ticker_event_times_are_every_tick_sent_once(fake_binance, connect) -> None:
    url = f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker"
    first, second = connect(url), connect(url)
    received = [json.loads(first.recv())["data"]["E"] for _ in range(5)]
    json.loads(second.recv())
    sent = fake_binance.ticker_event_times("BTCUSDT")
    assert sent == sorted(set(sent)), "one entry per tick, although two connections got it"
    assert sent[sent.index(received[0]):][:5] == received, "every tick the client got, none it did not"
    assert fake_binance.ticker_event_times("NOSUCHUSDT") == []


@pytest.mark.parametrize(("frame", "binary", "opcode"), [
    ('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":77}', False, websocket.ABNF.OPCODE_TEXT),
    ("not json {", False, websocket.ABNF.OPCODE_TEXT),
    ('{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1,"s":"ZZZUSDT","c":"1.0","extra":{"x":[1]}}}',
     False, websocket.ABNF.OPCODE_TEXT),
    ('{"e":"somethingNew","E":1}', True, websocket.ABNF.OPCODE_BINARY),
    (b"\x00\xffraw", False, websocket.ABNF.OPCODE_BINARY),
])
def test_inject_sends_a_raw_frame_to_every_connection(fake_binance, connect, frame, binary, opcode) -> None:
    sockets = [connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker"),
               connect(f"{fake_binance.ws_url}/ws")]
    wait_for(lambda: len(fake_binance.open_connections()) == 2)
    raw = frame.encode() if isinstance(frame, str) else frame
    assert fake_binance.inject(frame, binary=binary) == 2
    for ws in sockets:
        assert next_raw(ws, lambda op, data: (op, data) == (opcode, raw)) == raw
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})["id"] == 1, "the connection stays usable"
    assert len(fake_binance.open_connections()) == 2
    assert fake_binance.ticker("ZZZUSDT") is None, "an injected frame is no tick of the fake's"
    assert fake_binance.control_messages() == [(1, {"method": "LIST_SUBSCRIPTIONS", "id": 1}),
                                               (2, {"method": "LIST_SUBSCRIPTIONS", "id": 1})]


def test_inject_with_no_connection_reaches_nobody(fake_binance) -> None:
    assert fake_binance.inject("{}") == 0
    with pytest.raises(TypeError, match="str or bytes"):
        fake_binance.inject({"e": "x"})  # type: ignore[arg-type]


def test_delivery_delay_makes_data_late_but_not_acks(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    json.loads(ws.recv())
    fake_binance.set_delivery_delay(0.5)
    since = time.time() * 1000
    sent = time.monotonic()
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": ["btcusdt@ticker"], "id": 1}
    assert time.monotonic() - sent < 0.5, "acks are not delayed"
    frames = data_after(ws, since, 2)
    arrived = time.time() * 1000
    assert arrived - frames[-1]["data"]["E"] >= 495, "E is the tick time, the frame arrives 0.5 s later"
    assert frames[0]["data"]["E"] < frames[1]["data"]["E"], "delayed frames keep their order"
    fake_binance.set_delivery_delay(0)
    with pytest.raises(ValueError, match="delivery delay"):
        fake_binance.set_delivery_delay(-1)


@pytest.mark.parametrize(("code", "reason"), [(1008, "Too many requests"), (1001, "going away")])
def test_close_all_with_binance_close_codes(fake_binance, connect, code, reason) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    wait_for(fake_binance.open_connections)
    assert fake_binance.close_all(code, reason) == 1
    assert read_until_closed(ws)[:2] == (code, reason)
    conn = fake_binance.connections()[0]
    assert (conn.open, conn.close_code, conn.close_reason) == (False, code, reason)


def test_set_lifetime_applies_to_new_connections_only(make_fake, connect) -> None:
    fake = make_fake(tick_interval=30)
    old = connect(f"{fake.ws_url}/market/ws")
    wait_for(fake.open_connections)
    fake.set_lifetime(0.5)
    started = time.monotonic()
    new = connect(f"{fake.ws_url}/market/ws")
    assert read_until_closed(new)[:2] == (1001, "going away")
    assert time.monotonic() - started >= 0.5
    assert wait_for(lambda: not info(fake, 2).open and info(fake, 2)).close_code == 1001
    assert [conn.id for conn in fake.open_connections()] == [1], "the older connection keeps its lifetime"
    assert request(old, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}
    with pytest.raises(ValueError, match="lifetime"):
        fake.set_lifetime(0)


def test_set_silent_for_some_symbols(fake_binance, connect) -> None:
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker/ethusdt@ticker/!ticker@arr")
    json.loads(ws.recv())
    fake_binance.set_silent(True, symbols=["BTCUSDT"])
    since = time.time() * 1000
    frames = data_after(ws, since, 6)  # two ticks: ethusdt@ticker and !ticker@arr each
    assert {frame["stream"] for frame in frames} == {"ethusdt@ticker", "!ticker@arr"}
    arrays = [frame["data"] for frame in frames if frame["stream"] == "!ticker@arr"]
    assert arrays and all("BTCUSDT" not in {row["s"] for row in rows} and
                          {"ETHUSDT", "BTCUSD_PERP"} <= {row["s"] for row in rows} for rows in arrays)
    assert fake_binance.ticker("BTCUSDT")["E"] <= since, "the fake records only what it sent"
    assert fake_binance.state()["silent_symbols"] == ["BTCUSDT"] and not fake_binance.state()["silent"]

    fake_binance.set_silent(False)
    since = time.time() * 1000
    assert {frame["stream"] for frame in data_after(ws, since, 3)} == {
        "btcusdt@ticker", "ethusdt@ticker", "!ticker@arr"}
    with pytest.raises(ValueError, match="upper-case"):
        fake_binance.set_silent(True, symbols=["btcusdt"])
    with pytest.raises(TypeError, match="collection"):
        fake_binance.set_silent(True, symbols="BTCUSDT")


def test_set_silent_symbols_add_and_remove(fake_binance) -> None:
    fake_binance.set_silent(True, symbols=["BTCUSDT", "ETHUSDT"])
    fake_binance.set_silent(False, symbols=["ETHUSDT"])
    assert (fake_binance.state()["silent"], fake_binance.state()["silent_symbols"]) == (False, ["BTCUSDT"])
    fake_binance.set_silent(True)
    assert (fake_binance.state()["silent"], fake_binance.state()["silent_symbols"]) == (True, ["BTCUSDT"])
    fake_binance.set_silent(False)
    assert (fake_binance.state()["silent"], fake_binance.state()["silent_symbols"]) == (False, [])


# ---------------------------------------------------------------- control endpoints and CLI

def test_http_control_endpoints(fake_binance, connect) -> None:
    base = f"{fake_binance.rest_url}/_fake"
    connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    state = wait_for(lambda: (s := requests.get(f"{base}/state", timeout=5).json())["open_total"] == 1 and s)
    assert state["open_connections"][0]["streams"] == ["btcusdt@ticker"]
    assert state["subscribed_streams"] == ["btcusdt@ticker"]
    assert requests.post(f"{base}/tick-interval", params={"seconds": "0.1"}, timeout=5).json() == {
        "tick_interval": 0.1}
    assert requests.post(f"{base}/tick-interval", params={"seconds": "-1"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/drop", timeout=5).json() == {"dropped": 1}
    assert fake_binance.open_connections() == []
    assert fake_binance.rest_requests() == [], "control calls are not Binance REST traffic"


def test_http_control_endpoints_for_fault_hooks(fake_binance, connect) -> None:
    base = f"{fake_binance.rest_url}/_fake"
    ws = connect(f"{fake_binance.ws_url}/market/stream?streams=btcusdt@ticker")
    wait_for(fake_binance.open_connections)
    assert requests.post(f"{base}/inject", data="not json {", timeout=5).json() == {"sent": 1}
    assert next_raw(ws, lambda op, data: data == b"not json {")
    assert requests.post(f"{base}/inject", params={"binary": "true"}, data=b"\x01\x02", timeout=5).json() == {
        "sent": 1}
    assert next_raw(ws, lambda op, data: op == websocket.ABNF.OPCODE_BINARY) == b"\x01\x02"
    silent = requests.post(f"{base}/silent", params={"on": "true", "symbols": "BTCUSDT,ETHUSDT"}, timeout=5)
    assert silent.json() == {"silent": False, "silent_symbols": ["BTCUSDT", "ETHUSDT"]}
    assert requests.post(f"{base}/silent", params={"symbols": "btc"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/silent", params={"on": "false"}, timeout=5).json() == {
        "silent": False, "silent_symbols": []}
    assert requests.post(f"{base}/delivery-delay", params={"seconds": "0.25"}, timeout=5).json() == {
        "delivery_delay": 0.25}
    assert requests.post(f"{base}/lifetime", params={"seconds": "2"}, timeout=5).json() == {
        "connection_lifetime": 2.0}
    assert requests.post(f"{base}/lifetime", params={"seconds": "0"}, timeout=5).status_code == 400
    refuse = requests.post(f"{base}/refuse", params={"seconds": "30"}, timeout=5).json()
    assert 29 < refuse["refusing_for"] <= 30
    assert try_connect(connect, f"{fake_binance.ws_url}/market/ws") is None
    state = requests.get(f"{base}/state", timeout=5).json()
    assert (len(state["connection_attempts"]), len(state["refused_attempts"])) == (2, 1)
    assert (state["delivery_delay"], state["connection_lifetime"]) == (0.25, 2.0)
    assert requests.post(f"{base}/refuse", params={"seconds": "0"}, timeout=5).json() == {"refusing_for": 0.0}
    assert requests.post(f"{base}/withhold-replies", params={"on": "true"}, timeout=5).json() == {
        "withholding_replies": True}
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}))
    assert requests.post(f"{base}/withhold-replies", params={"on": "false"}, timeout=5).json() == {
        "withholding_replies": False}
    assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 6})["id"] == 6, "id 5 was never answered"
    closed = requests.post(f"{base}/close", params={"code": "1008", "reason": "Too many requests"}, timeout=5)
    assert closed.json() == {"closed": 1}
    assert read_until_closed(ws)[:2] == (1008, "Too many requests")


def test_command_line_runs_until_sigterm() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.binance", "--port", "0", "--tick-interval", "0.1"],
                               cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        fields = dict(part.split("=", 1) for part in line.split()[3:])
        assert line.startswith("fake binance listening ws=ws://127.0.0.1:")
        assert requests.get(f"{fields['rest']}/fapi/v1/ping", timeout=5).json() == {}
        ws = websocket.create_connection(f"{fields['ws']}/market/ws/btcusdt@ticker", timeout=scaled(5.0))
        try:
            assert json.loads(ws.recv())["s"] == "BTCUSDT"
        finally:
            ws.shutdown()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=scaled(10.0)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
