"""The documented Socket.IO contract, end to end: service process, fake exchange, python-socketio clients."""
from __future__ import annotations

import re

import pytest

from tests.e2e.clients import without_positions

ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_connect_greets_with_client_id(clients) -> None:
    client = clients()
    (greeting,) = client.wait("connected")
    assert greeting == {"message": "Connected to WebSocket Streaming Service", "client_id": client.sio.get_sid()}


def test_subscribe_acknowledges_and_sends_the_cached_price_at_once(service, clients, fake_binance) -> None:
    warm = clients()
    warm.emit("subscribe", {"symbols": ["BTCUSDT"]})
    warm.wait("price_update", lambda d: d["symbol"] == "BTCUSDT", count=2)  # the cache is warm now
    fake_binance.set_tick_interval(30)  # no live tick can arrive during the check below
    client = clients()
    client.emit("subscribe", {"symbols": ["btcusdt", "ETHUSDT", "BTCUSDT"]})
    (ack,) = client.wait("subscribed")
    assert without_positions(ack) == {"symbols": ["BTCUSDT", "ETHUSDT"], "streams": ["ticker"], "exchange": "binance",
                                      "message": "Subscribed to 2 symbols"}
    updates = client.wait("price_update", count=2, timeout=3)
    assert {u["symbol"] for u in updates} == {"BTCUSDT", "ETHUSDT"}


def test_price_update_carries_binance_values_as_numbers(clients, fake_binance) -> None:
    client = clients()
    client.emit("subscribe", {"symbols": ["ETHUSDT"]})
    client.wait("price_update", lambda d: d["symbol"] == "ETHUSDT", count=2)
    sent = fake_binance.ticker("ETHUSDT")
    (update,) = client.wait("price_update", lambda d: d["symbol"] == "ETHUSDT" and d["eventTime"] == sent["E"])
    assert update["price"] == float(sent["c"]) and update["volume"] == float(sent["v"])
    assert update["high"] == float(sent["h"]) and update["low"] == float(sent["l"])
    assert update["change"] == float(sent["p"]) and update["changePercent"] == float(sent["P"])
    for key in ("price", "volume", "high", "low", "change", "changePercent"):
        assert isinstance(update[key], float), key
    assert isinstance(update["eventTime"], int) and not isinstance(update["eventTime"], bool)
    assert ISO_MS_Z.fullmatch(update["timestamp"])
    client.wait("price_update", lambda d: d["symbol"] == "ETHUSDT", count=5)
    times = [u["eventTime"] for u in client.received("price_update")]
    assert times == sorted(times) and len(set(times)) == len(times), "in order, no duplicates"


def test_updates_reach_only_subscribers_and_stop_after_unsubscribe(clients) -> None:
    btc, eth = clients(), clients()
    btc.emit("subscribe", {"symbols": ["BTCUSDT"]})
    eth.emit("subscribe", {"symbols": ["ETHUSDT"]})
    btc.wait("price_update", count=3)
    eth.wait("price_update", count=3)
    assert {u["symbol"] for u in btc.received("price_update")} == {"BTCUSDT"}
    assert {u["symbol"] for u in eth.received("price_update")} == {"ETHUSDT"}
    btc.emit("unsubscribe", {"symbols": ["btcusdt", "SOLUSDT"]})
    (ack,) = btc.wait("unsubscribed")
    assert ack == {"symbols": ["BTCUSDT"], "streams": ["ticker", "trade", "book"], "exchange": "binance",
                   "message": "Unsubscribed from 1 symbols"}
    btc.clear()
    eth.wait("price_update", count=len(eth.received("price_update")) + 5)  # several ticks pass
    assert btc.received("price_update") == []


def test_ack_callbacks_answer_too(clients) -> None:
    client = clients()
    answer = client.call("subscribe", {"symbols": ["SOLUSDT"]})
    assert without_positions(answer) == {"symbols": ["SOLUSDT"], "streams": ["ticker"], "exchange": "binance",
                                         "message": "Subscribed to 1 symbols"}
    answer = client.call("subscribe", {"symbols": ["NOPEUSDT"]})
    assert answer["symbols"] == [] and [e["code"] for e in answer["errors"]] == ["UNKNOWN_SYMBOL"]
    assert client.call("subscribe", "junk")["code"] == "INVALID_REQUEST"
    answer = client.call("unsubscribe", {"symbols": ["SOLUSDT"]})
    assert answer == {"symbols": ["SOLUSDT"], "streams": ["ticker", "trade", "book"], "exchange": "binance",
                      "message": "Unsubscribed from 1 symbols"}


@pytest.mark.parametrize("payload, code", [
    (None, "INVALID_REQUEST"), ("BTCUSDT", "INVALID_REQUEST"), (["BTCUSDT"], "INVALID_REQUEST"),
    ({}, "INVALID_REQUEST"), ({"symbols": "BTCUSDT"}, "INVALID_REQUEST"), ({"symbols": []}, "INVALID_REQUEST"),
    ({"symbols": [1, None]}, "INVALID_SYMBOL"), ({"symbols": ["BTC-USDT"]}, "INVALID_SYMBOL"),
    ({"symbols": ["NOTACOINUSDT"]}, "UNKNOWN_SYMBOL"), ({"symbols": ["BTCUSDT_260327"]}, "UNKNOWN_SYMBOL"),
    ({"symbols": ["XAUUSDT"]}, "UNKNOWN_SYMBOL"), ({"symbols": ["NEWCOINUSDT"]}, "UNKNOWN_SYMBOL"),
])
def test_bad_input_gets_an_error_and_the_client_stays(clients, payload: object, code: str) -> None:
    client = clients()
    client.emit("subscribe", payload)
    (error,) = client.wait("error")
    assert error["code"] == code and error["message"] and error["event"] == "subscribe"
    assert client.received("subscribed") == []
    client.emit("subscribe", {"symbols": ["BTCUSDT"]})
    client.wait("subscribed")
    client.wait("price_update")
    assert client.sio.connected


@pytest.mark.parametrize("event, confirmation", [("subscribe", "subscribed"), ("unsubscribe", "unsubscribed")])
def test_a_request_with_only_invalid_items_gets_only_the_error(clients, event: str, confirmation: str) -> None:
    client = clients()
    client.emit(event, {"symbols": [1, "BTC-USDT"]})
    (error,) = client.wait("error")
    assert error["code"] == "INVALID_SYMBOL" and error["event"] == event
    client.call("subscribe", {"symbols": ["BTCUSDT"]})  # answered after anything the first request caused
    assert client.received(confirmation, lambda answer: answer["symbols"] == []) == []
    ack = client.call(event, {"symbols": ["BTC-USDT"]})
    verb = "Subscribed to" if event == "subscribe" else "Unsubscribed from"
    streams = ["ticker"] if event == "subscribe" else ["ticker", "trade", "book"]
    if event == "subscribe":
        ack = without_positions(ack)
    assert ack == {"symbols": [], "streams": streams, "exchange": "binance", "message": f"{verb} 0 symbols", "errors": [
        {"code": "INVALID_SYMBOL", "message": ack["errors"][0]["message"], "event": event, "symbols": ["BTC-USDT"]}]}


def test_valid_symbols_in_a_bad_unsubscribe_are_still_unsubscribed(clients) -> None:
    client = clients()
    client.call("subscribe", {"symbols": ["BTCUSDT", "ETHUSDT"]})
    ack = client.call("unsubscribe", {"symbols": ["ethusdt", 42]})
    assert ack["symbols"] == ["ETHUSDT"] and [e["code"] for e in ack["errors"]] == ["INVALID_SYMBOL"]
    assert [name for name, _ in client.events if name in ("unsubscribed", "error")] == ["unsubscribed", "error"]


def test_valid_symbols_in_a_bad_request_are_still_subscribed(clients) -> None:
    client = clients()
    client.emit("subscribe", {"symbols": ["BTCUSDT", "FAKECOINUSDT", 42, "ethusdt"]})
    (ack,) = client.wait("subscribed")
    assert ack["symbols"] == ["BTCUSDT", "ETHUSDT"]
    errors = client.wait("error", count=2)
    assert {e["code"] for e in errors} == {"UNKNOWN_SYMBOL", "INVALID_SYMBOL"}
    unknown = next(e for e in errors if e["code"] == "UNKNOWN_SYMBOL")
    assert unknown["symbols"] == ["FAKECOINUSDT"] and "/symbols" in unknown["message"]
    client.wait("price_update", lambda d: d["symbol"] == "ETHUSDT")


def test_unknown_events_get_an_error(clients) -> None:
    client = clients()
    client.emit("subscrbe", {"symbols": ["BTCUSDT"]})
    (error,) = client.wait("error")
    assert error["code"] == "UNKNOWN_EVENT" and "subscribe" in error["message"]


def test_long_polling_clients_work_too(clients) -> None:
    client = clients(transports=["polling"])
    client.emit("subscribe", {"symbols": ["BNBUSDT"]})
    client.wait("price_update", lambda d: d["symbol"] == "BNBUSDT", count=2)


def test_a_cold_symbol_gets_its_first_price_from_rest_at_once(clients, fake_binance) -> None:
    fake_binance.set_tick_interval(30)  # the stream would take long; the first price must not
    client = clients()
    client.emit("subscribe", {"symbols": ["AVAXUSDT"]})
    (update,) = client.wait("price_update", lambda d: d["symbol"] == "AVAXUSDT", timeout=3)
    assert isinstance(update["price"], float)
    assert ("/fapi/v1/ticker/24hr", {"symbol": "AVAXUSDT"}) in fake_binance.rest_requests()
