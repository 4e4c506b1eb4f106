"""HTTP endpoints end to end: /price (cache, REST fallback, errors), /health, /stats, /symbols, /metrics."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.clients import RecordingClient
from tests.e2e.process import ROOT, free_port
from tests.helpers import wait_for
from tests.metrics_samples import label_values, metric_value

PRICE_FIELDS = {"symbol", "price", "volume", "high", "low", "change", "changePercent", "timestamp", "eventTime"}


def test_price_from_cache_for_a_streamed_symbol(service, fake_binance, clean_redis) -> None:
    body = wait_for(lambda: (r := service.get("/price/BTCUSDT")).status_code == 200
                    and r.json()["source"] == "cache" and r.json())
    assert body["success"] is True and PRICE_FIELDS <= set(body["data"])
    assert body["data"]["symbol"] == "BTCUSDT" and isinstance(body["data"]["price"], float)
    rest_calls = len(fake_binance.rest_requests())
    for _ in range(5):
        assert service.get("/price/BTCUSDT").json()["source"] == "cache"
    assert len(fake_binance.rest_requests()) == rest_calls, "a fresh cached price never calls Binance"
    stored = json.loads(wait_for(lambda: clean_redis.get("price:BTCUSDT"), message=f"{clean_redis.keys()}"))
    assert stored["symbol"] == "BTCUSDT" and isinstance(stored["price"], str)
    assert 0 < clean_redis.pttl("price:BTCUSDT") <= 60_000
    assert service.get("/price/btcusdt").json()["data"]["symbol"] == "BTCUSDT"


def test_price_falls_back_to_binance_rest_and_caches_it(service, fake_binance) -> None:
    body = service.get("/price/LINKUSDT").json()
    assert body["success"] is True and body["source"] == "api"
    sent = [q for path, q in fake_binance.rest_requests() if path == "/fapi/v1/ticker/24hr"]
    assert sent == [{"symbol": "LINKUSDT"}]
    assert PRICE_FIELDS <= set(body["data"]) and body["data"]["symbol"] == "LINKUSDT"
    again = service.get("/price/LINKUSDT").json()
    assert again["source"] == "cache" and again["data"] == body["data"]


def test_unknown_symbol_is_404_and_malformed_is_400(service) -> None:
    for symbol in ("NOTACOINUSDT", "BTCUSDT_260327", "XAUUSDT"):
        response = service.get(f"/price/{symbol}")
        assert response.status_code == 404 and response.json()["success"] is False
        assert response.json()["error"] and response.headers["Content-Type"].startswith("application/json")
    for raw in ("BTC-USDT", "%00", "..%2F..%2Fetc%2Fpasswd", "a" * 300, "<script>"):
        response = service.get(f"/price/{raw}")
        assert response.status_code in (400, 404) and response.json()["success"] is False, raw


def test_binance_failure_without_cache_is_a_json_503(service, fake_binance) -> None:
    fake_binance.set_rest_failure(500)
    response = service.get("/price/DOGEUSDT")
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False and "Binance" in body["error"] and body["code"] == "UPSTREAM_UNAVAILABLE"
    fake_binance.set_rest_failure(None)
    assert service.get("/price/DOGEUSDT").status_code == 200


def test_stale_cache_is_not_served_as_current(start_service, fake_binance) -> None:
    service = start_service(PRICE_MAX_AGE="1")
    wait_for(lambda: service.get("/price/BTCUSDT").json().get("source") == "cache")
    fake_binance.set_silent(True)
    fake_binance.set_rest_failure(503)
    body = wait_for(lambda: (r := service.get("/price/BTCUSDT")).status_code == 503 and r.json(), timeout=5)
    assert "no fresh price" in body["error"]


def test_unknown_routes_and_methods_answer_json(service) -> None:
    response = service.get("/nope")
    assert response.status_code == 404 and response.json()["success"] is False
    import requests
    response = requests.post(service.url + "/health", timeout=5)
    assert response.status_code == 405 and response.json()["success"] is False


def test_health_stats_symbols_keep_the_documented_shapes(service, fake_binance) -> None:
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["BTCUSDT", "XRPUSDT"]})
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT")
        health = wait_for(lambda: (h := service.get("/health").json())["status"] == "healthy" and h)
        assert {"service", "status", "port", "timestamp", "uptime", "dependencies", "metrics"} <= set(health)
        assert health["service"] == "websocket-streaming" and health["port"] == service.port
        assert health["dependencies"]["cache"]["status"] == "healthy" and health["dependencies"]["cache"]["message"]
        assert set(health["metrics"]) >= {"active_streams", "total_subscriptions", "active_symbols"}
        assert health["metrics"]["active_streams"] == 6 and health["metrics"]["total_subscriptions"] == 2
        assert health["upstream"]["connected"] is True and health["upstream"]["last_message_age"] < 5
        assert health["uptime"].endswith("s") and "h " in health["uptime"]

        stats = service.get("/stats").json()
        assert stats["success"] is True
        data = stats["data"]
        assert {"service", "port", "active_streams", "active_symbols", "total_subscriptions",
                "subscriptions_by_symbol", "white_hat_mode", "uptime", "connected_clients"} <= set(data)
        assert data["white_hat_mode"] is True and data["connected_clients"] == 1
        assert data["subscriptions_by_symbol"] == {"BTCUSDT": 1, "XRPUSDT": 1}
        assert "XRPUSDT" in data["active_symbols"] and data["active_streams"] == 6

        symbols = service.get("/symbols").json()
        assert symbols["success"] is True
        assert symbols["data"]["default_symbols"] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"]
        assert symbols["data"]["supported"] == "All Binance USDT perpetual futures"
        assert "XRPUSDT" in symbols["data"]["active_symbols"]
    finally:
        client.close()


def test_metrics_count_what_happens(service) -> None:
    prefix = "websocket_streaming_"
    before = service.get("/metrics").text
    grew: list[tuple[str, dict[str, str]]] = [
        ("upstream_messages_total", {"exchange": "binance", "stream_type": "ticker"}), ("updates_emitted_total", {}),
        ("deliveries_total", {"path": "direct"}), ("cache_writes_total", {})]
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": ["BTCUSDT"]})
        client.wait("price_update", count=2)
        # the cache writer flushes in batches: wait for one after the updates
        after = wait_for(lambda: (text := service.get("/metrics").text) and all(
            metric_value(text, prefix + name, **labels) > metric_value(before, prefix + name, **labels)
            for name, labels in grew) and text, message="every counter of the updates grew")
    finally:
        client.close()
    assert metric_value(after, prefix + "connected_clients") == 1
    assert metric_value(after, prefix + "subscriptions") == 1
    assert metric_value(after, prefix + "symbol_subscriptions", symbol="BTCUSDT") == 1
    reconnects = label_values(after, prefix + "upstream_reconnects_total", "reason")
    assert reconnects and set(reconnects.values()) == {0.0}, f"nothing reconnected: {reconnects}"


def test_runs_without_redis_at_all(start_service) -> None:
    service = start_service(REDIS_ENABLED="false")
    wait_for(lambda: service.get("/price/BTCUSDT").json().get("source") == "cache")
    health = service.get("/health").json()
    assert health["dependencies"]["cache"]["status"] == "disabled"


def test_redis_not_answering_falls_back_to_memory(start_service) -> None:
    service = start_service(REDIS_PORT=str(free_port()))
    wait_for(lambda: service.get("/price/BTCUSDT").json().get("source") == "cache")
    health = service.get("/health").json()
    assert health["status"] == "degraded" and health["dependencies"]["cache"]["status"] == "degraded"
    assert any("cache" in reason for reason in health["reasons"])


def test_prometheus_can_be_disabled(start_service) -> None:
    service = start_service(PROMETHEUS_ENABLED="false")
    assert service.get("/metrics").status_code == 404


@pytest.mark.parametrize("key, value", [("PORT", "abc"), ("BINANCE_WS_URL", "https://example"),
                                        ("DEFAULT_SYMBOLS", "BTC/USDT")])
def test_bad_configuration_stops_start_up_naming_the_key(key: str, value: str) -> None:
    from tests.e2e.process import service_env

    class NoFake:
        ws_url, rest_url = "ws://127.0.0.1:9", "http://127.0.0.1:9"

    env = service_env(NoFake(), **{key: value})  # type: ignore[arg-type]
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert key in result.stderr and "Traceback" not in result.stderr
