"""Chaos: random upstream and REST faults for a bounded time while 50 clients hold 20 symbols each.

Afterwards every client receives every symbol again, no subscription is lost, and the service's background
tasks, threads and memory are back to their level from before the faults.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.clients import RecordingClient
from tests.helpers import wait_for

CLIENTS = 50
CHAOS_SECONDS = 20.0
FAST = dict(RECONNECT_DELAY="0.3", RECONNECT_MAX_DELAY="3", STALE_TIMEOUT="2", PING_INTERVAL="1",
            PONG_TIMEOUT="2")


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def background_tasks(service) -> float:
    for line in service.get("/metrics").text.splitlines():
        if line.startswith("websocket_streaming_background_tasks "):
            return float(line.split()[1])
    raise AssertionError("no background_tasks metric")


def faults(fake):
    garbage = ['{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":4242}', "}{ not json",
               '{"stream":"btcusdt@ticker","data":{"e":"newEventType","E":1}}']
    return [
        ("drop", lambda: fake.drop_all()),
        ("close 1008", lambda: fake.close_all(1008, "Too many requests")),
        ("close 1001", lambda: fake.close_all(1001, "going away")),
        ("silent", lambda: fake.set_silent(True)),
        ("talk", lambda: fake.set_silent(False)),
        ("garbage", lambda: [fake.inject(frame) for frame in garbage]),
        ("refuse", lambda: (fake.refuse_connections(2.0), fake.drop_all())),
        ("rest 429", lambda: fake.set_rest_failure(429, retry_after=1)),
        ("rest 418", lambda: fake.set_rest_failure(418, retry_after=1)),
        ("rest ok", lambda: fake.set_rest_failure(None)),
    ]


def test_chaos(start_service, fake_binance) -> None:
    symbols = sorted(fake_binance.perpetual_symbols())[:20]
    # 50 clients x 20 symbols at 2 ticks/s = 2,000 deliveries/s, all read by python-socketio clients in this one
    # process. At 5 ticks/s they fall seconds behind, read the server's Engine.IO ping too late, and
    # python-engineio's client gives up after 30 s without sending anything ("packet queue is empty").
    fake_binance.set_tick_interval(0.5)
    service = start_service(**FAST)
    with ThreadPoolExecutor(10) as pool:
        clients = list(pool.map(lambda _: RecordingClient(service.url), range(CLIENTS)))
    try:
        for client in clients:
            client.emit("subscribe", {"symbols": symbols})
        for client in clients:
            client.wait("price_update", count=len(symbols), timeout=20)
        wait_for(lambda: service.get("/health").json()["status"] == "healthy", timeout=10)
        pid = service.proc.pid
        before = proc_status(pid)
        tasks_before = background_tasks(service)

        rng = random.Random(20260423)
        menu = faults(fake_binance)
        injected = []
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline:
            name, fault = rng.choice(menu)
            fault()
            injected.append(name)
            time.sleep(rng.uniform(0.2, 1.5))  # the pace of the chaos itself, not a wait for a condition

        fake_binance.set_silent(False)
        fake_binance.set_rest_failure(None)
        healed_ms = int(time.time() * 1000)
        for client in clients:
            for symbol in symbols:
                client.wait("price_update", lambda d, s=symbol: d["symbol"] == s and d["eventTime"] > healed_ms,
                            timeout=30)
        stats = service.get("/stats").json()["data"]
        assert stats["connected_clients"] == CLIENTS
        assert stats["subscriptions_by_symbol"] == {symbol: CLIENTS for symbol in symbols}
        wait_for(lambda: service.get("/health").json()["status"] == "healthy", timeout=30)
        wait_for(lambda: background_tasks(service) <= tasks_before, timeout=10,
                 message=f"background tasks back to {tasks_before}")
        after = proc_status(pid)
        assert after["Threads"] <= before["Threads"], (before, after)
        assert after["VmRSS"] < before["VmRSS"] * 1.25 + 10_000, (before, after, injected)
        for client in clients:
            assert client.sio.connected
            for symbol in symbols:
                times = [d["eventTime"] for d in client.received("price_update", lambda d, s=symbol: d["symbol"] == s)]
                assert times == sorted(times) and len(set(times)) == len(times), "in order, no duplicates"
    finally:
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda c: c.close(), clients))
    assert len(set(injected)) >= 6, injected
