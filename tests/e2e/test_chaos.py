"""Chaos: random upstream and REST faults for a bounded time while 50 clients hold 20 symbols each and a few
users poll /price for symbols nobody streams.

Meanwhile every /price answer is a price (from the cache or Binance REST) or a 503 with Retry-After and the last
known price, never an error or a hang, and the service never calls Binance inside a Retry-After. Afterwards every
client receives every symbol again, no subscription is lost, and the service's background tasks, threads and
memory are back to their level from before the faults.
"""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from config import Settings
from tests.e2e.clients import RecordingClient
from tests.fakes.rest import BAN, BANNED
from tests.helpers import scaled, wait_for

CLIENTS = 50
CHAOS_SECONDS = 20.0
SEED = 20260432  # a draw with every fault of the menu, the REST ones several times
# PRICE_MAX_AGE 1: a cold symbol's price from REST is stale a second later, so /price keeps needing Binance REST.
FAST = dict(RECONNECT_DELAY="0.3", RECONNECT_MAX_DELAY="3", STALE_TIMEOUT="2", PING_INTERVAL="1",
            PONG_TIMEOUT="2", PRICE_MAX_AGE="1")
# Valid perpetuals that are neither DEFAULT_SYMBOLS nor among the clients' 20: only REST knows their price.
COLD = ("LINKUSDT", "DOTUSDT", "LTCUSDT", "UNIUSDT", "XLMUSDT", "TRXUSDT")
POLLERS = 3  # users polling /price at once, each for its own two cold symbols
POLL_PAUSE = 0.1  # seconds between one poller's requests
# The service's own timeout for its Binance call (HTTP_TIMEOUT, default) plus time to answer: longer is a hang.
PRICE_TIMEOUT = Settings().http_timeout + 2.0


@dataclass(frozen=True)
class PriceAnswer:
    symbol: str
    status: int | None  # None: no answer within PRICE_TIMEOUT, or no connection
    retry_after: str | None
    body: Any  # the JSON body, or why there was none


def poll_prices(url: str, symbols: tuple[str, ...], stop: threading.Event) -> list[PriceAnswer]:
    """GET /price for `symbols` in turn until `stop` is set (bounded by the chaos's length); the answers in order."""
    answers: list[PriceAnswer] = []
    for turn in range(int(2 * CHAOS_SECONDS / POLL_PAUSE)):
        if stop.is_set():
            break
        symbol = symbols[turn % len(symbols)]
        try:
            response = requests.get(f"{url}/price/{symbol}", timeout=scaled(PRICE_TIMEOUT))
            answers.append(PriceAnswer(symbol, response.status_code, response.headers.get("Retry-After"),
                                       response.json()))
        except (requests.RequestException, ValueError) as exc:
            answers.append(PriceAnswer(symbol, None, None, repr(exc)))
        stop.wait(POLL_PAUSE)  # the pace of the polling, not a wait for a condition
    return answers


def check_price_answers(answers: list[PriceAnswer]) -> None:
    """What a /price user may see during faults: a price, or a 503 with Retry-After and the last known price."""
    priced: set[str] = set()
    for answer in answers:
        assert answer.status in (200, 503), answer
        if answer.status == 200:
            assert answer.body["success"] is True and answer.body["source"] in ("cache", "api"), answer
            assert answer.body["data"]["symbol"] == answer.symbol
            priced.add(answer.symbol)
            continue
        assert answer.body["code"] == "UPSTREAM_RATE_LIMITED", answer
        assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer
        if answer.symbol in priced:
            assert answer.body["last_known"]["data"]["symbol"] == answer.symbol, answer


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def background_tasks(service) -> float:
    return service.metric("websocket_streaming_background_tasks")


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
    assert set(COLD) <= fake_binance.perpetual_symbols() - set(symbols) - set(Settings().default_symbols)
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

        rng = random.Random(SEED)
        menu = faults(fake_binance)
        injected = []
        stop = threading.Event()
        with ThreadPoolExecutor(POLLERS) as pool:
            polls = [pool.submit(poll_prices, service.url, COLD[i::POLLERS], stop) for i in range(POLLERS)]
            deadline = time.monotonic() + CHAOS_SECONDS
            while time.monotonic() < deadline:
                name, fault = rng.choice(menu)
                fault()
                injected.append(name)
                time.sleep(rng.uniform(0.2, 1.5))  # the pace of the chaos itself, not a wait for a condition
            stop.set()
            answers = [poll.result(timeout=scaled(PRICE_TIMEOUT) + 5) for poll in polls]

        fake_binance.set_silent(False)
        fake_binance.set_rest_failure(None)
        for poller in answers:
            check_price_answers(poller)
        statuses = [answer.status for poller in answers for answer in poller]
        assert 200 in statuses and 503 in statuses, f"the REST faults never reached a /price user: {statuses}"
        bans = [call for call in fake_binance.rest_calls() if call.cause in (BAN, BANNED)]
        assert not bans, f"the service called Binance inside a Retry-After: {bans}"
        # /price works again once the last Retry-After is over (and /health's "rest:" reason clears with it)
        wait_for(lambda: all(service.get(f"/price/{symbol}").status_code == 200 for symbol in COLD), timeout=10)
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
