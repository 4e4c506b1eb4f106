"""A client that stops reading: its backlog is conflated, it is cut off, and nobody else notices."""
from __future__ import annotations

import json
import socket
import time

import websocket

from tests.e2e.clients import RecordingClient
from tests.e2e.test_chaos import proc_status
from tests.helpers import wait_for


def metric(service, name: str) -> float:
    for line in service.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_slow_consumer_is_conflated_then_cut_off_without_hurting_others(start_service, fake_binance) -> None:
    fake_binance.set_tick_interval(0.05)
    symbols = sorted(fake_binance.perpetual_symbols())[:100]
    service = start_service(CLIENT_BACKLOG_LIMIT="50", SLOW_CLIENT_TIMEOUT="3", MAX_SYMBOLS_PER_REQUEST="200")
    normal = RecordingClient(service.url)
    normal.emit("subscribe", {"symbols": symbols[:5]})
    normal.wait("price_update", count=10)
    rss_before = proc_status(service.proc.pid)["VmRSS"]
    normal.clear()

    url = service.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    slow = websocket.create_connection(url, timeout=5, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    try:
        assert slow.recv().startswith("0")
        slow.send("40")
        slow.send("42" + json.dumps(["subscribe", {"symbols": symbols}]))
        # ... and never reads again.
        wait_for(lambda: metric(service, "websocket_streaming_slow_client_conflations_total") > 0, timeout=30,
                 message="the slow client's backlog was conflated")
        wait_for(lambda: metric(service, "websocket_streaming_slow_client_disconnects_total") == 1, timeout=30)
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 1, timeout=10)
    finally:
        slow.shutdown()

    during = sorted(normal.latencies_ms())
    assert during[int(len(during) * 0.9)] < 250, f"latency of the normal client while the slow one lagged: {during}"
    rss_after = proc_status(service.proc.pid)["VmRSS"]
    assert rss_after - rss_before < 60_000, f"server memory grew by {rss_after - rss_before} KB"
    assert metric(service, "websocket_streaming_slow_client_dropped_updates_total") > 0
    normal.clear()
    start = int(time.time() * 1000)
    normal.wait("price_update", lambda d: d["eventTime"] > start, count=20)
    latencies = sorted(normal.latencies_ms())
    assert latencies[int(len(latencies) * 0.9)] < 250, f"the normal client still gets fresh prices: {latencies}"
    normal.close()
