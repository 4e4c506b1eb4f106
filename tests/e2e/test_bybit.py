"""Bybit linear perpetuals end to end, beside Binance, against the strict fake Bybit (tests/fakes/bybit.py):
`subscribe {exchange: "bybit"}` tickers, trades and book tickers equal to what the fake sent (the snapshot and
delta merges included), both exchanges at once, faults of one leaving the other untouched, history and recovery
per exchange, the REST endpoints' `?exchange=`, and Bybit's frames recorded and replayed."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streaming.exchanges.recording import Record, decode_record
from tests.e2e.clients import RecordingClient, unpositioned
from tests.e2e.process import ROOT, ServiceProcess
from tests.fakes.binance import FakeBinance
from tests.fakes.bybit import FakeBybit
from tests.helpers import scaled, wait_for
from tests.metrics_samples import metric_value

PREFIX = "websocket_streaming_"
PING_TIMEOUT = 2.5  # the fake drops a connection that has not pinged for this long (the service pings every 1 s)


@pytest.fixture
def bybit() -> Iterator[FakeBybit]:
    fake = FakeBybit(tick_interval=0.2, ping_timeout=PING_TIMEOUT).start()
    try:
        yield fake
    finally:
        fake.stop()


def bybit_settings(fake: FakeBybit) -> dict[str, str]:
    return {"EXCHANGES": "binance,bybit", "BYBIT_WS_URL": fake.ws_url, "BYBIT_REST_URL": fake.rest_url,
            "PING_INTERVAL": "1", "STALE_TIMEOUT": "3"}


@pytest.fixture
def service(start_service, bybit: FakeBybit) -> ServiceProcess:
    return start_service(**bybit_settings(bybit))


def merged_tickers(fake: FakeBybit, symbol: str) -> dict[int, dict[str, str]]:
    """Each message's `ts` -> the ticker a client holds after merging it (snapshot, then deltas), per
    connection of the fake, as the fake sent them."""
    held: dict[str, dict[str, str]] = {}
    merged: dict[int, dict[str, str]] = {}
    for conn_id, message in fake.sent(f"tickers.{symbol}"):
        state = {} if message["type"] == "snapshot" else held.setdefault(conn_id, {})
        state = {**state, **message["data"]}
        held[conn_id] = state
        merged[message["ts"]] = state
    return merged


def expected_price_update(fields: dict[str, str], event_time: int) -> dict[str, Any]:
    """The documented mapping of a merged Bybit ticker to `price_update` (README, "Exchanges")."""
    last, previous = Decimal(fields["lastPrice"]), Decimal(fields["prevPrice24h"])
    return {"symbol": fields["symbol"], "exchange": "bybit", "price": float(last),
            "volume": float(fields["volume24h"]), "high": float(fields["highPrice24h"]),
            "low": float(fields["lowPrice24h"]), "change": float(last - previous),
            "changePercent": float(Decimal(fields["price24hPcnt"]) * 100), "open": float(previous),
            "quoteVolume": float(fields["turnover24h"]), "eventTime": event_time}


def without_time_text(update: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in unpositioned(update).items() if key != "timestamp"}


def test_tickers_trades_and_books_equal_what_bybit_sent_including_the_delta_merges(
        clients, bybit: FakeBybit) -> None:
    client: RecordingClient = clients()
    ack = client.call("subscribe", {"symbols": ["BTCUSDT", "ETHUSDT"], "streams": ["ticker", "trade", "book"],
                                    "exchange": "bybit"})
    assert ack["exchange"] == "bybit" and ack["symbols"] == ["BTCUSDT", "ETHUSDT"], ack
    assert set(ack["positions"]) == {f"bybit:{kind}:{symbol}" for kind in ("ticker", "trade", "book")
                                     for symbol in ("BTCUSDT", "ETHUSDT")}
    client.wait("price_update", lambda u: u["symbol"] == "ETHUSDT", count=12, timeout=15)
    client.wait("trade", count=10, timeout=15)
    client.wait("book_ticker", count=10, timeout=15)
    client.close()
    assert {topic for topic in bybit.subscribed_topics()} >= {"tickers.BTCUSDT", "publicTrade.ETHUSDT",
                                                               "orderbook.1.BTCUSDT"}
    for symbol in ("BTCUSDT", "ETHUSDT"):
        merged = merged_tickers(bybit, symbol)
        updates = client.received("price_update", lambda u, symbol=symbol: u["symbol"] == symbol)
        streamed = [u for u in updates if u["eventTime"] in merged]
        assert len(streamed) >= len(updates) - 1, "at most the first came from REST (the warm-up)"
        assert len(streamed) >= 5
        for update in streamed:
            assert without_time_text(update) == expected_price_update(merged[update["eventTime"]],
                                                                      update["eventTime"])
        times = [u["eventTime"] for u in updates]
        assert times == sorted(set(times)), "in order, none twice"
        deltas_without_price = [m for _, m in bybit.sent(f"tickers.{symbol}")
                                if m["type"] == "delta" and "lastPrice" not in m["data"]]
        assert deltas_without_price, "the fake sent deltas a client must merge"
    trades = client.received("trade")
    sent = {trade["i"]: trade for symbol in ("BTCUSDT", "ETHUSDT") for trade in bybit.trades(symbol)}
    for trade in trades:
        row = sent[trade["id"]]
        assert (trade["exchange"], trade["symbol"], trade["price"], trade["quantity"], trade["side"],
                trade["tradeTime"], trade["firstTradeId"]) == (
            "bybit", row["s"], float(row["p"]), float(row["v"]), row["S"].lower(), row["T"], None)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = [t["id"] for t in trades if t["symbol"] == symbol]
        order = [trade["i"] for trade in bybit.trades(symbol)]
        assert ids == [i for i in order if i in set(ids)] and len(ids) == len(set(ids)), "in order, once each"
        if ids:  # from the first one received on, none of the fake's was missed
            assert ids == order[order.index(ids[0]):order.index(ids[-1]) + 1]
    books = client.received("book_ticker")
    for symbol in ("BTCUSDT", "ETHUSDT"):
        sent_books = {m["data"]["seq"]: m for _, m in bybit.sent(f"orderbook.1.{symbol}")}
        received = [b for b in books if b["symbol"] == symbol]
        assert [b["updateId"] for b in received] == sorted({b["updateId"] for b in received})
        for book in received:
            if book["updateId"] is None:
                continue  # the REST answer a new subscriber got first
            message = sent_books[book["updateId"]]
            (bid, bid_qty), (ask, ask_qty) = message["data"]["b"][0], message["data"]["a"][0]
            assert (book["exchange"], book["bid"], book["bidQty"], book["ask"], book["askQty"],
                    book["eventTime"]) == ("bybit", float(bid), float(bid_qty), float(ask), float(ask_qty),
                                           message["ts"])


def test_a_client_holds_both_exchanges_at_once_and_unsubscribes_one(clients, bybit: FakeBybit) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["BTCUSDT"]})
    client.call("subscribe", {"symbols": ["BTCUSDT"], "exchange": "bybit", "streams": ["ticker", "trade"]})
    client.wait("price_update", lambda u: u["exchange"] == "bybit", count=3)
    client.wait("price_update", lambda u: u["exchange"] == "binance", count=3)
    ack = client.call("unsubscribe", {"symbols": ["BTCUSDT"], "exchange": "bybit"})
    assert ack["exchange"] == "bybit" and ack["symbols"] == ["BTCUSDT"]
    time.sleep(0.5)
    seen = len(client.received("price_update", lambda u: u["exchange"] == "bybit"))
    binance = len(client.received("price_update", lambda u: u["exchange"] == "binance"))
    client.wait("price_update", lambda u: u["exchange"] == "binance", count=binance + 3)
    assert len(client.received("price_update", lambda u: u["exchange"] == "bybit")) == seen
    refused = client.call("subscribe", {"symbols": ["BTCUSDT"], "exchange": "okx"})
    assert refused["code"] == "INVALID_REQUEST" and "okx" in refused["message"], refused
    unknown = client.call("subscribe", {"symbols": ["NOPEUSDT"], "exchange": "bybit"})
    assert unknown["symbols"] == [] and unknown["errors"][0]["code"] == "UNKNOWN_SYMBOL"


def test_rest_endpoints_take_the_exchange(service: ServiceProcess, bybit: FakeBybit) -> None:
    wait_for(lambda: service.get("/symbols?exchange=bybit").json()["data"]["symbols_loaded"], timeout=10)
    symbols = service.get("/symbols?exchange=bybit").json()["data"]
    assert symbols["exchange"] == "bybit" and set(symbols["available_symbols"]) == bybit.usdt_perpetuals()
    assert set(symbols["exchanges"]) == {"binance", "bybit"}
    price = service.get("/price/BTCUSDT?exchange=bybit").json()
    assert price["success"] and price["data"]["exchange"] == "bybit"
    assert price["data"]["price"] == pytest.approx(float(bybit.ticker("BTCUSDT")["lastPrice"]), rel=0.05)
    book = service.get("/book/ETHUSDT?exchange=bybit").json()
    assert book["success"] and book["data"]["exchange"] == "bybit" and book["data"]["bid"] < book["data"]["ask"]
    trades = wait_for(lambda: (answer := service.get("/trades/SOLUSDT?exchange=bybit&limit=5").json())
                      and answer["success"] and len(answer["data"]) == 5 and answer, timeout=10)
    assert all(t["exchange"] == "bybit" for t in trades["data"])
    assert service.get("/price/BTCUSDT").json()["data"]["exchange"] == "binance"
    bad = service.get("/price/BTCUSDT?exchange=okx")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_REQUEST"
    unknown = service.get("/price/NOPEUSDT?exchange=bybit")
    assert unknown.status_code == 404 and unknown.json()["code"] == "UNKNOWN_SYMBOL"


def test_history_and_recovery_are_per_exchange(clients, service: ServiceProcess) -> None:
    client = clients()
    ack = client.call("subscribe", {"symbols": ["ETHUSDT"], "streams": ["trade"], "exchange": "bybit"})
    client.wait("trade", count=5)
    position = ack["positions"]["bybit:trade:ETHUSDT"]
    client.close()
    time.sleep(1.0)
    back = clients()
    answer = back.call("subscribe", {"symbols": ["ETHUSDT"], "streams": ["trade"], "exchange": "bybit",
                                     "since": {"bybit:trade:ETHUSDT": position}})
    assert answer["recovered"] == {"bybit:trade:ETHUSDT": True}, answer
    recovered = back.wait("trade", lambda t: t.get("recovered"), count=3)
    assert all(t["exchange"] == "bybit" for t in recovered)
    offsets = [t["offset"] for t in back.received("trade")]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets))) and offsets[0] == position["offset"] + 1
    page = service.get("/history/ETHUSDT?exchange=bybit&stream=trade&limit=50").json()["data"]
    assert page["exchange"] == "bybit" and page["items"] and all(i["exchange"] == "bybit" for i in page["items"])
    binance = service.get("/history/ETHUSDT?stream=trade&limit=50").json()["data"]
    assert binance["exchange"] == "binance" and all(i["exchange"] == "binance" for i in binance["items"])
    metrics = service.get("/metrics").text
    assert metric_value(metrics, f"{PREFIX}upstream_messages_total", exchange="bybit", stream_type="trade") > 0
    assert metric_value(metrics, f"{PREFIX}upstream_connections", exchange="bybit", state="live") == 1


def live_count(client: RecordingClient, exchange: str) -> int:
    return len(client.received("price_update", lambda u: u["exchange"] == exchange))


def assert_flowing(client: RecordingClient, exchange: str, more: int = 4, timeout: float = 5.0) -> None:
    before = live_count(client, exchange)
    client.wait("price_update", lambda u: u["exchange"] == exchange, count=before + more, timeout=timeout)


def test_bybit_faults_leave_binance_untouched_and_health_names_bybit(
        clients, service: ServiceProcess, bybit: FakeBybit, fake_binance: FakeBinance) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["BTCUSDT"]})
    client.call("subscribe", {"symbols": ["BTCUSDT"], "exchange": "bybit"})
    assert_flowing(client, "bybit")
    bybit.refuse_connections(3)
    bybit.drop_all()
    client.wait("stream_status", lambda s: s["exchange"] == "bybit" and s["state"] == "reconnecting")
    assert not client.received("stream_status", lambda s: s["exchange"] == "binance")
    health = wait_for(lambda: (body := service.get("/health").json())
                      and any(r.startswith("bybit upstream") for r in body["reasons"]) and body, timeout=5)
    assert health["exchanges"]["bybit"]["upstream"]["connected"] is False
    assert health["exchanges"]["binance"]["status"] == "healthy"
    assert_flowing(client, "binance")  # Binance goes on while Bybit is down
    bybit.set_rest_failure(403)  # and while Bybit's REST bans us
    assert service.get("/price/BTCUSDT").json()["data"]["exchange"] == "binance"
    assert_flowing(client, "binance")
    bybit.set_rest_failure(None)
    client.wait("stream_status", lambda s: s["exchange"] == "bybit" and s["state"] == "live", timeout=15)
    assert_flowing(client, "bybit")
    bybit.set_silent(True)  # connected, but nothing flows
    client.wait("stream_status", lambda s: s["exchange"] == "bybit" and s["state"] == "stale", timeout=45)
    assert_flowing(client, "binance")
    bybit.set_silent(False)
    assert_flowing(client, "bybit", timeout=45)
    binance = [u["eventTime"] for u in client.received("price_update", lambda u: u["exchange"] == "binance")]
    assert binance == sorted(set(binance))


def test_binance_faults_leave_bybit_untouched(clients, bybit: FakeBybit, fake_binance: FakeBinance) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["ETHUSDT"]})
    client.call("subscribe", {"symbols": ["ETHUSDT"], "exchange": "bybit"})
    assert_flowing(client, "binance")
    fake_binance.refuse_connections(3)
    fake_binance.drop_all()
    client.wait("stream_status", lambda s: s["exchange"] == "binance" and s["state"] == "reconnecting")
    assert_flowing(client, "bybit")
    assert not client.received("stream_status", lambda s: s["exchange"] == "bybit")
    client.wait("stream_status", lambda s: s["exchange"] == "binance" and s["state"] == "live", timeout=15)


def test_the_service_pings_bybit_so_the_strict_fake_never_drops_it(clients, bybit: FakeBybit) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["XRPUSDT"], "exchange": "bybit"})
    client.wait("price_update", lambda u: u["exchange"] == "bybit")
    time.sleep(PING_TIMEOUT * 2)
    (connection,) = bybit.open_connections()
    assert len(bybit.pings(connection.conn_id)) >= PING_TIMEOUT * 2 - 1
    assert len(bybit.connections()) == 1, "never dropped for want of a ping"


def test_the_readmes_faults_against_bybit_heal_and_leave_binance_flowing(
        clients, service: ServiceProcess, bybit: FakeBybit) -> None:
    """README "Failure modes", replayed against Bybit: closes of every kind, error frames and garbage, one symbol
    going quiet. Each heals on Bybit while Binance's updates go on, in order."""
    client = clients()
    client.call("subscribe", {"symbols": ["BTCUSDT", "ETHUSDT"]})
    client.call("subscribe", {"symbols": ["BTCUSDT", "ETHUSDT"], "exchange": "bybit", "streams": ["ticker", "book"]})
    assert_flowing(client, "bybit")
    for code, reason in ((1008, "Too many requests"), (1001, "going away"), (1011, "internal error")):
        bybit.close_all(code, reason)
        assert_flowing(client, "binance")
        assert_flowing(client, "bybit", timeout=15)
    garbage = ['{"success":false,"ret_msg":"error:unknown","conn_id":"x","op":"subscribe"}', "not json", "[1,2]",
               '{"topic":"tickers.BTCUSDT","type":"delta","ts":1,"data":{"symbol":"BTCUSDT","lastPrice":"x"}}',
               '{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[]}']
    connections = len(bybit.connections())
    for frame in garbage * 20:
        bybit.inject(frame)
    assert_flowing(client, "bybit")
    assert len(bybit.connections()) == connections, "garbage does not cost the connection"
    metrics = service.get("/metrics").text
    assert metric_value(metrics, f"{PREFIX}upstream_events_total", event="unrecognised") > 0
    bybit.set_silent(True, symbols=["ETHUSDT"])
    client.wait("stream_status", lambda s: s == {**s, "exchange": "bybit", "symbol": "ETHUSDT", "state": "stale"},
                timeout=15)
    before = len(client.received("price_update", lambda u: u["exchange"] == "bybit" and u["symbol"] == "BTCUSDT"))
    client.wait("price_update", lambda u: u["exchange"] == "bybit" and u["symbol"] == "BTCUSDT", count=before + 3)
    bybit.set_silent(False, symbols=["ETHUSDT"])
    client.wait("stream_status", lambda s: s == {**s, "exchange": "bybit", "symbol": "ETHUSDT", "state": "live"},
                timeout=15)
    assert not client.received("stream_status", lambda s: s["exchange"] == "binance")
    for exchange in ("binance", "bybit"):
        for symbol in ("BTCUSDT", "ETHUSDT"):
            times = [u["eventTime"] for u in client.received(
                "price_update", lambda u, e=exchange, s=symbol: u["exchange"] == e and u["symbol"] == s)]
            assert times == sorted(set(times)), f"{exchange} {symbol}: in order, none twice"


def recorded_tickers(records: list[Record], symbol: str) -> list[dict[str, str]]:
    """The merged ticker after each recorded `tickers` message (a snapshot replaces, a delta updates)."""
    held: dict[str, str] = {}
    merged = []
    for record in records:
        message = json.loads(record.frame)
        if message.get("topic") == f"tickers.{symbol}":
            held = {**({} if message["type"] == "snapshot" else held), **message["data"]}
            merged.append(held)
    return merged


def test_both_exchanges_frames_are_recorded_and_replayed_each_through_its_own_parser(
        start_service, bybit: FakeBybit, fake_binance: FakeBinance, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("BINANCE_", "BYBIT_", "EXCHANGES"))}
    env.update(BINANCE_WS_URL=fake_binance.ws_url, BYBIT_WS_URL=bybit.ws_url, PING_INTERVAL="1",
               RECONNECT_DELAY="0.5")
    done = subprocess.run(
        [sys.executable, "-m", "streaming.record", "--out", str(tmp_path / "rec" / "upstream"),
         "--exchanges", "binance,bybit", "--symbols", "BTCUSDT", "--duration", str(PING_TIMEOUT * 1.6)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=scaled(30),
    )
    assert done.returncode == 0, done.stderr
    [path] = (tmp_path / "rec").glob("upstream-*.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as file:
        every = [decode_record(line) for line in file]
    assert {(record.exchange, record.route) for record in every} == {
        ("bybit", "/v5/public/linear"), ("binance", "/market"), ("binance", "/public")}
    records = [record for record in every if record.exchange == "bybit"]
    assert len(bybit.connections()) == 1, "pinged: the strict fake never dropped the recorder"
    topics = {json.loads(record.frame).get("topic") for record in records}
    assert {"tickers.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.1.BTCUSDT"} <= topics
    merged = recorded_tickers(records, "BTCUSDT")
    assert len(merged) >= 5 and any("lastPrice" not in json.loads(r.frame).get("data", {}) for r in records
                                    if json.loads(r.frame).get("topic") == "tickers.BTCUSDT"), "deltas recorded"
    recorded_trades = {row["i"]: row for record in records
                       if (message := json.loads(record.frame)).get("topic") == "publicTrade.BTCUSDT"
                       for row in message["data"]}
    recorded_books = {(m["data"]["b"][0][0], m["data"]["a"][0][0]) for r in records
                      if (m := json.loads(r.frame)).get("topic") == "orderbook.1.BTCUSDT"}
    connections = len(bybit.connections())

    replayed = start_service(EXCHANGES="binance,bybit", BYBIT_WS_URL=bybit.ws_url, BYBIT_REST_URL=bybit.rest_url,
                             UPSTREAM_REPLAY_FILE=str(path), UPSTREAM_REPLAY_SPEED="2", REDIS_ENABLED="false")
    client = RecordingClient(replayed.url)
    try:
        ack = client.call("subscribe", {"symbols": ["BTCUSDT"], "exchange": "bybit",
                                        "streams": ["ticker", "trade", "book"]})
        assert ack["symbols"] == ["BTCUSDT"], ack
        client.wait("price_update", count=len(merged) + 2, timeout=scaled(20))  # into the second loop
        client.wait("trade", count=3)
        client.wait("book_ticker", count=3)
        binance = client.call("subscribe", {"symbols": ["BTCUSDT"]})
        assert binance["exchange"] == "binance" and binance["symbols"] == ["BTCUSDT"], binance
        client.wait("price_update", lambda u: u["exchange"] == "binance", count=2)
    finally:
        client.close()
    expected = [{k: v for k, v in expected_price_update(fields, 0).items() if k != "eventTime"} for fields in merged]
    updates = client.received("price_update", lambda u: u["exchange"] == "bybit")
    for update in updates:
        assert {k: v for k, v in without_time_text(update).items() if k != "eventTime"} in expected, update
    times = [u["eventTime"] for u in updates]
    assert times == sorted(set(times)) and times[-1] > time.time() * 1000 - 5000, "in order, and live"
    binance_prices = {json.loads(r.frame)["data"]["c"] for r in every if "btcusdt@ticker" in r.frame}
    assert {str(u["price"]) for u in client.received("price_update", lambda u: u["exchange"] == "binance")} <= {
        str(float(price)) for price in binance_prices}
    for trade in client.received("trade"):
        row = recorded_trades[trade["id"]]
        assert (trade["exchange"], trade["price"], trade["quantity"]) == ("bybit", float(row["p"]), float(row["v"]))
    for book in client.received("book_ticker"):
        assert (book["bid"], book["ask"]) in {(float(bid), float(ask)) for bid, ask in recorded_books}
    assert len(bybit.connections()) == connections, "a replay opens no connection to Bybit"
    health = replayed.get("/health").json()
    assert health["exchanges"]["bybit"]["rest"]["status"] == "disabled"
    assert "bybit:BTCUSDT" in health["upstream"]["replay"]["symbols"]
    symbols = replayed.get("/symbols?exchange=bybit").json()["data"]
    assert symbols["available_symbols"] == ["BTCUSDT"] and "recording" in symbols["supported"]
