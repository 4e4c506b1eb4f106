"""Upstream behaviour seen from the exchange's side: route, live subscriptions, grace period, reconnects."""
from __future__ import annotations

import json

from tests.e2e.clients import RecordingClient
from tests.helpers import wait_for
from tests.metrics_samples import metric_value

DEFAULT_STREAMS = {f"{s}@ticker" for s in ("btcusdt", "ethusdt", "bnbusdt", "solusdt", "adausdt")}


def control(fake_binance, method: str) -> list[dict]:
    return [m for _, m in fake_binance.control_messages() if isinstance(m, dict) and m.get("method") == method]


def test_defaults_stream_on_the_market_route_from_the_start(service, fake_binance) -> None:
    wait_for(lambda: fake_binance.subscribed_streams() >= DEFAULT_STREAMS)
    connections = fake_binance.open_connections()
    assert len(connections) == 1
    assert connections[0].route == "market" and connections[0].path == "/market/stream"
    health = wait_for(lambda: (h := service.get("/health").json())["metrics"]["active_streams"] == 5 and h)
    assert sorted(health["metrics"]["active_symbols"]) == sorted(s.split("@")[0].upper() for s in DEFAULT_STREAMS)


def test_first_subscriber_subscribes_live_and_last_one_unsubscribes_after_grace(service, fake_binance) -> None:
    wait_for(lambda: fake_binance.subscribed_streams() >= DEFAULT_STREAMS)
    first = RecordingClient(service.url)
    second = RecordingClient(service.url)
    try:
        first.emit("subscribe", {"symbols": ["XRPUSDT", "BTCUSDT"]})
        second.emit("subscribe", {"symbols": ["XRPUSDT"]})
        first.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
        second.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
        subscribes = control(fake_binance, "SUBSCRIBE")
        assert [m["params"] for m in subscribes] == [["xrpusdt@ticker"]], "one request for the new stream"
        assert all(isinstance(m["id"], int) and m["id"] >= 0 for m in subscribes)
        assert len(fake_binance.connections()) == 1, "a subscription change never reconnects"
        stats = service.get("/stats").json()["data"]
        assert stats["subscriptions_by_symbol"] == {"BTCUSDT": 1, "XRPUSDT": 2}
        assert stats["total_subscriptions"] == 3 and stats["connected_clients"] == 2
        first.close()
        second.emit("unsubscribe", {"symbols": ["XRPUSDT"]})
        second.wait("unsubscribed")
        wait_for(lambda: control(fake_binance, "UNSUBSCRIBE"), timeout=5)
        assert [m["params"] for m in control(fake_binance, "UNSUBSCRIBE")] == [["xrpusdt@ticker"]]
        assert "xrpusdt@ticker" not in fake_binance.subscribed_streams()
        assert fake_binance.subscribed_streams() >= DEFAULT_STREAMS, "defaults are never unsubscribed"
        wait_for(lambda: service.get("/stats").json()["data"]["total_subscriptions"] == 0)
    finally:
        first.close()
        second.close()


def test_a_client_coming_back_within_the_grace_period_does_not_flap(start_service, fake_binance) -> None:
    service = start_service(UNSUBSCRIBE_GRACE="3")
    client = RecordingClient(service.url)
    client.emit("subscribe", {"symbols": ["LTCUSDT"]})
    client.wait("price_update", lambda d: d["symbol"] == "LTCUSDT")
    client.close()
    again = RecordingClient(service.url)
    try:
        again.emit("subscribe", {"symbols": ["LTCUSDT"]})
        again.wait("price_update", lambda d: d["symbol"] == "LTCUSDT", count=3)
        assert control(fake_binance, "UNSUBSCRIBE") == []
        assert len(control(fake_binance, "SUBSCRIBE")) == 1
    finally:
        again.close()


def test_disconnect_cleans_up_subscriptions(service, fake_binance) -> None:
    client = RecordingClient(service.url)
    client.emit("subscribe", {"symbols": ["DOTUSDT", "BTCUSDT"]})
    client.wait("subscribed")
    wait_for(lambda: service.get("/stats").json()["data"]["total_subscriptions"] == 2)
    client.close()
    stats = wait_for(lambda: (d := service.get("/stats").json()["data"])["connected_clients"] == 0 and d)
    assert stats["total_subscriptions"] == 0 and stats["subscriptions_by_symbol"] == {}
    wait_for(lambda: "dotusdt@ticker" not in fake_binance.subscribed_streams(), timeout=5)


def test_dropped_connection_is_restored_with_every_stream(service, fake_binance) -> None:
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["XRPUSDT", "ETHUSDT"]})
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
        wanted = DEFAULT_STREAMS | {"xrpusdt@ticker"}
        wait_for(lambda: fake_binance.subscribed_streams() >= wanted)
        assert fake_binance.drop_all() == 1
        wait_for(lambda: len(fake_binance.open_connections()) == 1 and fake_binance.subscribed_streams() >= wanted,
                 timeout=10, message="service did not reconnect and restore its streams")
        client.clear()
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT", count=2)
        client.wait("price_update", lambda d: d["symbol"] == "ETHUSDT", count=2)
        metrics = service.get("/metrics").text
        assert metric_value(metrics, "websocket_streaming_upstream_reconnects_total", reason="closed") == 1
    finally:
        client.close()


def test_many_symbols_at_once_stay_under_binance_message_limit(service, fake_binance) -> None:
    symbols = sorted(fake_binance.perpetual_symbols())
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": symbols})
        (ack,) = client.wait("subscribed")
        assert len(ack["symbols"]) == len(symbols)
        wanted = {s.lower() + "@ticker" for s in symbols}
        wait_for(lambda: fake_binance.subscribed_streams() >= wanted, timeout=15)
        assert len(fake_binance.connections()) == 1, "no 1008 disconnect for too many requests"
        subscribes = control(fake_binance, "SUBSCRIBE")
        assert all(len(m["params"]) <= 50 for m in subscribes), "SUBSCRIBE frames stay small"
        assert len({m["id"] for m in subscribes}) == len(subscribes), "ids are unique"
    finally:
        client.close()


def test_exchange_info_failure_at_start_does_not_stop_the_service(start_service, fake_binance) -> None:
    fake_binance.set_rest_failure(503)
    service = start_service(SYMBOLS_RETRY_INTERVAL="0.5")
    # unhealthy only until the upstream connection is live (REST fails, so nothing else serves prices)
    health = wait_for(lambda: (h := service.get("/health").json())["status"] != "unhealthy" and h, timeout=5)
    assert health["status"] == "degraded" and any("symbols" in r for r in health["reasons"])
    assert service.get("/symbols").json()["data"]["symbols_loaded"] is False
    fake_binance.set_rest_failure(None)
    wait_for(lambda: service.get("/symbols").json()["data"]["symbols_loaded"], timeout=5)
    assert "BTCUSDT" in service.get("/symbols").json()["data"]["available_symbols"]


def test_subscriptions_taken_before_symbols_load_are_checked_once_they_load(start_service, fake_binance) -> None:
    fake_binance.set_rest_failure(503)
    service = start_service(SYMBOLS_RETRY_INTERVAL="1")
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["NOSUCHCOINUSDT", "XRPUSDT"]})
        (ack,) = client.wait("subscribed")
        assert ack["symbols"] == ["NOSUCHCOINUSDT", "XRPUSDT"]  # accepted provisionally
        fake_binance.set_rest_failure(None)
        (error,) = client.wait("error", timeout=5)
        assert error["code"] == "UNKNOWN_SYMBOL" and error["symbols"] == ["NOSUCHCOINUSDT"]
        stats = wait_for(lambda: (d := service.get("/stats").json()["data"])["total_subscriptions"] == 1 and d)
        assert stats["subscriptions_by_symbol"] == {"XRPUSDT": 1}
    finally:
        client.close()


def test_control_messages_are_json_the_exchange_accepts(service, fake_binance) -> None:
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["XRPUSDT"]})
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
    finally:
        client.close()
    for _, message in fake_binance.control_messages():
        assert isinstance(message, dict), f"not JSON: {json.dumps(message)[:100]}"
    assert all(c.close_code in (None, 1000) for c in fake_binance.connections())


def test_symbol_list_is_refreshed_periodically(start_service, fake_binance) -> None:
    """A changed exchangeInfo is applied at the next refresh: a delisted symbol is taken from its subscribers
    with UNKNOWN_SYMBOL and no longer streamed; a newly listed one is accepted and streams."""
    service = start_service(SYMBOLS_REFRESH_INTERVAL="1")
    client = RecordingClient(service.url)
    try:
        assert client.call("subscribe", {"symbols": ["XRPUSDT", "LTCUSDT"]})["symbols"] == ["XRPUSDT", "LTCUSDT"]
        refused = client.call("subscribe", {"symbols": ["NEWLYUSDT"]})
        assert refused["symbols"] == [] and refused["errors"][0]["code"] == "UNKNOWN_SYMBOL"
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
        loads = sum(p == "/fapi/v1/exchangeInfo" for p, _ in fake_binance.rest_requests())

        fake_binance.delist("XRPUSDT")
        fake_binance.list_symbol("NEWLYUSDT")
        (error,) = client.wait("error", lambda e: e["symbols"] == ["XRPUSDT"], timeout=5)
        assert error["code"] == "UNKNOWN_SYMBOL" and error["event"] == "subscribe", error
        assert sum(p == "/fapi/v1/exchangeInfo" for p, _ in fake_binance.rest_requests()) > loads
        stats = wait_for(lambda: (d := service.get("/stats").json()["data"])["total_subscriptions"] == 1 and d)
        assert stats["subscriptions_by_symbol"] == {"LTCUSDT": 1}
        available = service.get("/symbols").json()["data"]["available_symbols"]
        assert "NEWLYUSDT" in available and "XRPUSDT" not in available
        assert service.get("/price/XRPUSDT").status_code == 404
        wait_for(lambda: "xrpusdt@ticker" not in fake_binance.subscribed_streams(), timeout=5,
                 message="the delisted symbol's stream was unsubscribed")

        assert client.call("subscribe", {"symbols": ["NEWLYUSDT"]})["symbols"] == ["NEWLYUSDT"]
        wait_for(lambda: "newlyusdt@ticker" in fake_binance.subscribed_streams(), timeout=5)
        client.clear()
        updates = client.wait("price_update", lambda d: d["symbol"] == "NEWLYUSDT", count=3)
        assert len({u["eventTime"] for u in updates}) == 3, "the new symbol ticks on the stream"
        assert not client.received("price_update", lambda d: d["symbol"] == "XRPUSDT")
    finally:
        client.close()


def test_binance_down_and_back(start_service, fake_binance) -> None:
    from tests.fakes.binance import FakeBinance

    service = start_service()
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["XRPUSDT"]})
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
        port = fake_binance.port
        fake_binance.stop()
        health = wait_for(lambda: (h := service.get("/health").json())["status"] == "degraded" and h, timeout=5)
        assert health["upstream"]["connected"] is False
        assert any("upstream" in reason for reason in health["reasons"])
        with FakeBinance(tick_interval=0.2, port=port) as revived:
            wait_for(lambda: "xrpusdt@ticker" in revived.subscribed_streams(), timeout=10)
            client.clear()
            client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT", count=2)
            wait_for(lambda: service.get("/health").json()["status"] == "healthy", timeout=5)
    finally:
        client.close()
