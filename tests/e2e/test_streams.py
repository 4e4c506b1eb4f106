"""Trades and book tickers end to end: `subscribe {symbols, streams}`, the `trade` and `book_ticker` events equal
to what the fake exchange sent, each kind's upstream route, partial unsubscribe, hostile `streams` values, and
GET /book and /trades. python-socketio clients here; socket.io-client at the end."""
from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.e2e.clients import RecordingClient, unpositioned, without_positions
from tests.e2e.process import ROOT, ServiceProcess
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

EVERY = ["ticker", "trade", "book"]


def expected_trade(row: dict[str, Any]) -> dict[str, Any]:
    """The documented `trade` payload of one aggTrade the fake sent."""
    return {"symbol": row["s"], "exchange": "binance", "id": row["a"], "price": float(row["p"]),
            "quantity": float(row["q"]), "side": "sell" if row["m"] else "buy", "firstTradeId": row["f"],
            "lastTradeId": row["l"], "tradeTime": row["T"], "eventTime": row["E"], "timestamp": iso(row["T"])}


def expected_book(row: dict[str, Any]) -> dict[str, Any]:
    """The documented `book_ticker` payload of one bookTicker the fake sent."""
    return {"symbol": row["s"], "exchange": "binance", "bid": float(row["b"]), "bidQty": float(row["B"]),
            "ask": float(row["a"]), "askQty": float(row["A"]), "updateId": row["u"], "eventTime": row["E"],
            "transactionTime": row["T"], "timestamp": iso(row["E"])}


def iso(epoch_ms: int) -> str:
    instant = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def streams_on(fake: FakeBinance, path: str) -> set[str]:
    return {stream for c in fake.open_connections() if c.path == path for stream in c.streams}


def test_trades_and_book_tickers_equal_what_the_exchange_sent_without_loss_or_repeats(clients, fake_binance) -> None:
    client = clients()
    ack = client.call("subscribe", {"symbols": ["ethusdt"], "streams": ["trade", "book"]})
    assert without_positions(ack) == {"symbols": ["ETHUSDT"], "streams": ["trade", "book"], "exchange": "binance",
                                      "message": "Subscribed to 1 symbols"}
    client.wait("trade", count=15)
    client.wait("book_ticker", count=15)
    client.close()
    trades, books = client.received("trade"), client.received("book_ticker")
    ids = [t["id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "every aggregated trade once, in order"
    sent = {row["a"]: row for row in fake_binance.trades_sent("ETHUSDT")}
    assert [unpositioned(t) for t in trades] == [expected_trade(sent[i]) for i in ids]
    sent_books = {row["u"]: row for row in fake_binance.books_sent("ETHUSDT")}
    update_ids = [b["updateId"] for b in books]
    assert update_ids == sorted(set(update_ids)), "in order, no repeats"
    # the first may be the snapshot of an earlier one; from then on every one the exchange sent
    assert [unpositioned(b) for b in books] == [expected_book(sent_books[u]) for u in update_ids]
    later = [u for u in sent_books if update_ids[0] <= u <= update_ids[-1]]
    assert update_ids == later, "none lost"
    assert client.received("price_update") == [], "only the streams asked for"


def test_each_kind_streams_on_its_own_route(clients, fake_binance) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["SOLUSDT"], "streams": EVERY})
    wait_for(lambda: {"solusdt@ticker", "solusdt@aggTrade"} <= streams_on(fake_binance, "/market/stream")
             and "solusdt@bookTicker" in streams_on(fake_binance, "/public/stream"), timeout=10)
    for connection in fake_binance.open_connections():
        suffixes = {stream.partition("@")[2] for stream in connection.streams}
        if connection.path == "/public/stream":
            assert suffixes == {"bookTicker"}, connection.streams
        else:
            assert connection.path == "/market/stream" and "bookTicker" not in suffixes, connection.streams
    client.wait("price_update")
    client.wait("trade")
    client.wait("book_ticker")


def test_book_sends_its_latest_at_once_and_trade_sends_none(clients, fake_binance) -> None:
    warm = clients()
    warm.call("subscribe", {"symbols": ["ETHUSDT"], "streams": ["book", "trade"]})
    warm.wait("book_ticker", count=2)
    warm.wait("trade", count=2)
    fake_binance.set_tick_interval(30)  # nothing new arrives during the check below
    wait_for(lambda: warm.received("book_ticker")[-1]["updateId"] == fake_binance.book_ticker("ETHUSDT")["u"])
    client = clients()
    client.call("subscribe", {"symbols": ["ETHUSDT"], "streams": ["trade", "book"]})
    (book,) = client.wait("book_ticker")
    assert unpositioned(book) == expected_book(fake_binance.book_ticker("ETHUSDT"))
    assert client.received("trade") == [], "trades are events: no snapshot"


def test_partial_unsubscribe_releases_only_that_stream_after_the_grace(clients, fake_binance) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["XRPUSDT"], "streams": ["ticker", "trade"]})
    client.wait("trade")
    ack = client.call("unsubscribe", {"symbols": ["XRPUSDT"], "streams": ["trade"]})
    assert ack == {"symbols": ["XRPUSDT"], "streams": ["trade"], "exchange": "binance",
                   "message": "Unsubscribed from 1 symbols"}
    wait_for(lambda: "xrpusdt@aggTrade" not in fake_binance.subscribed_streams(), timeout=10)
    unsubscribed = [m["params"] for _, m in fake_binance.control_messages()
                    if isinstance(m, dict) and m.get("method") == "UNSUBSCRIBE"]
    assert unsubscribed == [["xrpusdt@aggTrade"]]
    assert "xrpusdt@ticker" in fake_binance.subscribed_streams()
    client.clear()
    client.wait("price_update", count=3)
    assert client.received("trade") == []
    ack = client.call("unsubscribe", {"symbols": ["XRPUSDT"]})  # every stream of it
    assert ack["symbols"] == ["XRPUSDT"] and ack["streams"] == EVERY
    assert client.call("unsubscribe", {"symbols": ["XRPUSDT"]})["symbols"] == [], "nothing left to release"


def test_a_client_leaving_releases_its_streams_on_both_routes(service, fake_binance) -> None:
    client = RecordingClient(service.url)
    client.call("subscribe", {"symbols": ["DOGEUSDT"], "streams": ["trade", "book"]})
    streams = {"dogeusdt@aggTrade", "dogeusdt@bookTicker"}
    wait_for(lambda: streams <= fake_binance.subscribed_streams(route=None), timeout=10)
    client.close()
    wait_for(lambda: not streams & fake_binance.subscribed_streams(route=None), timeout=10)


@pytest.mark.parametrize("streams", ["trade", ["foo"], [5], [], [None], {"trade": True}, ["ticker", "TRADE"], 0])
def test_hostile_streams_refuse_the_whole_request_and_nothing_goes_upstream(clients, fake_binance,
                                                                             streams: object) -> None:
    client = clients()
    before = fake_binance.subscribed_streams(route=None)
    answer = client.call("subscribe", {"symbols": ["ADAUSDT"], "streams": streams})
    assert answer["code"] == "INVALID_REQUEST" and "'streams'" in answer["message"], answer
    (error,) = client.wait("error")
    assert error == answer
    assert client.call("unsubscribe", {"symbols": ["ADAUSDT"], "streams": streams})["code"] == "INVALID_REQUEST"
    client.call("subscribe", {"symbols": ["BTCUSDT"]})  # answered after anything the bad one caused
    assert [without_positions(answer) for answer in client.received("subscribed")] == [
        {"symbols": ["BTCUSDT"], "streams": ["ticker"], "exchange": "binance", "message": "Subscribed to 1 symbols"}]
    # ADAUSDT's ticker is a default symbol's, always streamed (and maybe not yet when `before` was read)
    assert not {s for s in fake_binance.subscribed_streams(route=None) - before
                if s.startswith("adausdt") and s != "adausdt@ticker"}
    assert client.sio.connected


def test_book_endpoint_serves_the_streamed_book_then_binance(service, clients, fake_binance) -> None:
    answer = requests.get(f"{service.url}/book/bnbusdt", timeout=5)
    assert answer.status_code == 200 and answer.json()["source"] == "api"
    body = answer.json()
    assert body["success"] is True and body["data"]["symbol"] == "BNBUSDT" and body["data"]["ask"] >= body["data"][
        "bid"]
    assert ("/fapi/v1/ticker/bookTicker", {"symbol": "BNBUSDT"}) in fake_binance.rest_requests()
    client = clients()
    client.call("subscribe", {"symbols": ["BNBUSDT"], "streams": ["book"]})
    client.wait("book_ticker", lambda b: b["updateId"] is not None)
    cached = requests.get(f"{service.url}/book/BNBUSDT", timeout=5).json()
    assert cached["source"] == "cache" and cached["data"]["updateId"] is not None
    assert requests.get(f"{service.url}/book/BTC-USDT", timeout=5).status_code == 400
    assert requests.get(f"{service.url}/book/NOPEUSDT", timeout=5).json()["code"] == "UNKNOWN_SYMBOL"


def test_trades_endpoint_serves_the_kept_trades_then_binance(service, clients, fake_binance) -> None:
    answer = requests.get(f"{service.url}/trades/LINKUSDT?limit=5", timeout=5)
    body = answer.json()
    assert answer.status_code == 200 and body["success"] is True and body["source"] == "api", body
    # as many as Binance has, up to the limit (the fake's tape holds only the trades of its ticks so far)
    assert 1 <= len(body["data"]) <= 5 and {t["symbol"] for t in body["data"]} == {"LINKUSDT"}
    ids = [t["id"] for t in body["data"]]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "newest last, without a gap"
    assert ("/fapi/v1/aggTrades", {"symbol": "LINKUSDT", "limit": "5"}) in fake_binance.rest_requests()
    client = clients()
    client.call("subscribe", {"symbols": ["LINKUSDT"], "streams": ["trade"]})
    client.wait("trade", count=4)
    kept = requests.get(f"{service.url}/trades/LINKUSDT?limit=3", timeout=5).json()
    assert kept["source"] == "cache", kept
    ids = [t["id"] for t in kept["data"]]
    assert ids == list(range(ids[0], ids[0] + 3))
    sent = {row["a"]: row for row in fake_binance.trades_sent("LINKUSDT")}
    assert kept["data"] == [expected_trade(sent[i]) for i in ids]
    assert requests.get(f"{service.url}/trades/LINKUSDT?limit=1000", timeout=5).json()["source"] == "api"
    for bad in ("0", "1001", "-1", "ten", "1e3", "", "5 5"):
        refused = requests.get(f"{service.url}/trades/LINKUSDT", params={"limit": bad}, timeout=5)
        assert refused.status_code == 400 and refused.json()["code"] == "INVALID_REQUEST", bad
        assert "'limit'" in refused.json()["error"]


def test_stats_count_subscriptions_by_channel(service, clients) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["ETHUSDT", "SOLUSDT"], "streams": ["trade", "book"]})
    stats = requests.get(f"{service.url}/stats", timeout=5).json()["data"]
    by_channel = stats["subscriptions_by_channel"]
    assert {key: by_channel[key] for key in ("trade:ETHUSDT", "book:ETHUSDT", "trade:SOLUSDT", "book:SOLUSDT")} == {
        "trade:ETHUSDT": 1, "book:ETHUSDT": 1, "trade:SOLUSDT": 1, "book:SOLUSDT": 1}
    assert stats["subscriptions_by_symbol"]["ETHUSDT"] >= 2
    wait_for(lambda: {"trade:SOLUSDT", "book:SOLUSDT"} <= set(
        requests.get(f"{service.url}/stats", timeout=5).json()["data"]["active_channels"]), timeout=10)


def test_socket_io_client_gets_the_same_trades_and_book_tickers(service: ServiceProcess, fake_binance) -> None:
    node = subprocess.run(
        ["node", "docs/examples/node-client.js", "--url", service.url, "--symbols", "ETHUSDT", "--streams",
         "trade,book", "--count", "30"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert node.returncode == 0, node.stderr
    lines = [json.loads(line) for line in node.stdout.splitlines()]
    assert lines[1]["event"] == "subscribed" and without_positions(lines[1]["data"]) == {
        "symbols": ["ETHUSDT"], "streams": ["trade", "book"], "exchange": "binance",
        "message": "Subscribed to 1 symbols"}
    trades = [line["data"] for line in lines if line["event"] == "trade"]
    books = [line["data"] for line in lines if line["event"] == "book_ticker"]
    assert trades and books
    sent = {row["a"]: row for row in fake_binance.trades_sent("ETHUSDT")}
    assert [unpositioned(t) for t in trades] == [expected_trade(sent[t["id"]]) for t in trades]
    ids = [t["id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    sent_books = {row["u"]: row for row in fake_binance.books_sent("ETHUSDT")}
    assert [unpositioned(b) for b in books] == [expected_book(sent_books[b["updateId"]]) for b in books]
