"""UPSTREAM_REPLAY_FILE end to end: the service as a process plays a recording in the place of Binance. A real
python-socketio client gets the recorded prices and quantities with live times, loop after loop, at the
recorded spacing divided by UPSTREAM_REPLAY_SPEED; nothing is asked of the exchange (the fake next to it sees no
connection and no request), and /health and /ready say it is a replay."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from streaming.exchanges.recording import Record, RecordingSummary, Scan
from tests.e2e.clients import RecordingClient
from tests.e2e.process import ROOT, ServiceProcess, free_port
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for
from tests.recordings import sample_records, write_recording

T0 = 1_796_200_000_000  # a day and a half before these tests were written: long past


@pytest.fixture
def client_of() -> Iterator[Callable[[ServiceProcess], RecordingClient]]:
    """Factory: client_of(service) -> a RecordingClient connected to that service (closed at teardown)."""
    made: list[RecordingClient] = []

    def connect(service: ServiceProcess) -> RecordingClient:
        made.append(RecordingClient(service.url))
        return made[-1]

    yield connect
    for client in made:
        client.close()


def summary_of(records: list[Record]) -> RecordingSummary:
    scan = Scan()
    for record in records:
        scan.add(record)
    return scan.summary()


def recorded_at(step: int, spacing: int) -> int:
    """The recorded event time of step ``step`` (tests.recordings.sample_records)."""
    return T0 + spacing * step


def test_a_recording_plays_live_in_the_place_of_binance(start_service, client_of, fake_binance: FakeBinance,
                                                        tmp_path: Path) -> None:
    steps, spacing = 6, 200  # 1 s of recording: a loop every 2 s or so
    records = sample_records(T0, steps, spacing)
    path = write_recording(tmp_path / "sample.jsonl.gz", records)
    period = summary_of(records).period_ms
    started = time.time() * 1000
    service: ServiceProcess = start_service(UPSTREAM_REPLAY_FILE=str(path), UPSTREAM_REPLAY_LOOP="true",
                                            REDIS_ENABLED="false")
    client = client_of(service)
    ack = client.call("subscribe", {"symbols": ["BTCUSDT"], "streams": ["ticker", "trade"]})
    assert ack["symbols"] == ["BTCUSDT"]
    client.wait("trade", lambda t: t["id"] >= 7000 + steps + 1, timeout=10)  # into the second loop
    trades = client.received("trade")
    with client._lock:
        arrivals = {data["id"]: at * 1000 for (name, data), at in zip(client.events, client.arrivals)
                    if name == "trade"}
    ids = [trade["id"] for trade in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "consecutive aggregate ids, across loops too"
    shifts = set()
    for trade in trades:
        loop, step = divmod(trade["id"] - 7000, steps)
        assert (trade["price"], trade["quantity"], trade["side"]) == (86000.0 + step, 4.577, "sell")
        assert trade["firstTradeId"] == 200 + 2 * step + 2 * steps * loop
        shifts.add(trade["eventTime"] - recorded_at(step, spacing) - loop * period)
        assert trade["tradeTime"] == trade["eventTime"] - 2
        assert abs(arrivals[trade["id"]] - trade["eventTime"]) < 1000, "times as live: about when it arrives"
    [shift] = shifts  # one constant for every frame (and the period on top of it for each loop)
    assert started - T0 < shift < time.time() * 1000 - T0
    tickers = client.received("price_update")
    assert all(round(t["price"] * 10) % 10 == 1 and 86000 <= t["price"] < 86000 + steps for t in tickers)
    times = [t["eventTime"] for t in tickers]
    assert times == sorted(set(times)) and len(times) >= steps

    health = service.get("/health").json()
    assert health["status"] == "healthy", health["reasons"]
    assert health["upstream"]["source"] == "replay" and health["upstream"]["connected"]
    assert health["upstream"]["replay"]["file"] == str(path) and health["upstream"]["replay"]["state"] == "playing"
    assert "replaying the recording" in health["dependencies"]["upstream"]["message"]
    assert "not Binance" in health["dependencies"]["upstream"]["message"]
    assert health["dependencies"]["rest"]["status"] == "disabled"
    ready = service.get("/ready").json()
    assert ready["ready"] and ready["source"] == "replay"
    assert service.get("/symbols").json()["data"]["available_symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert service.get("/price/XRPUSDT").status_code == 404, "the symbols are those of the recording"
    price = service.get("/price/BTCUSDT").json()
    assert price["source"] == "cache" and 86000 < price["data"]["price"] < 86000 + steps
    assert service.get("/trades/BTCUSDT?limit=5").json()["source"] == "cache", "the replayed trades are kept"
    asked = time.monotonic()
    book = service.get("/book/ETHUSDT")  # none in the recording: the REST fallback fails at once, never hangs
    assert book.status_code == 503 and time.monotonic() - asked < 2
    assert "not used while replaying" in book.json()["error"]
    assert fake_binance.connection_attempts() == [] and fake_binance.rest_requests() == []


def test_the_replay_speed_divides_the_recorded_spacing(start_service, client_of, tmp_path: Path) -> None:
    steps, spacing = 21, 500  # 10 s of recording
    path = write_recording(tmp_path / "sample.jsonl.gz", sample_records(T0, steps, spacing))
    service = start_service(UPSTREAM_REPLAY_FILE=str(path), UPSTREAM_REPLAY_SPEED="10", REDIS_ENABLED="false")
    client = client_of(service)
    client.call("subscribe", {"symbols": ["BTCUSDT"], "streams": ["trade"]})

    def one_whole_loop() -> tuple[float, float] | None:
        with client._lock:
            seen = {data["id"]: at for (name, data), at in zip(client.events, client.arrivals) if name == "trade"}
        for first in sorted(seen):
            if (first - 7000) % steps == 0 and first + steps - 1 in seen:
                return seen[first], seen[first + steps - 1]
        return None

    first, last = wait_for(one_whole_loop, timeout=10, message="the first and last trade of one loop")
    assert 0.6 < last - first < 1.5, f"10 s of recording took {last - first:.2f} s at speed 10"


def test_make_demo_streams_the_shipped_recording_to_the_examples(tmp_path: Path) -> None:
    """`make demo` as the README runs it (its installs are done: the suite runs after them), on a free port, with
    the Python example client subscribed to trades and tickers: the shipped recording, no exchange at all."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "LOG_FILE": "off", "HOST": "127.0.0.1"}
    env.pop("BINANCE_WS_URL", None)
    with open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen(["make", "--no-print-directory", "demo"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        health = wait_for(lambda: answer(url + "/health"), timeout=30, message="the demo's /health")
        assert health["upstream"]["source"] == "replay", health
        client = subprocess.run([sys.executable, "docs/examples/python-client.py", "--url", url, "--symbols",
                                 "BTCUSDT", "--streams", "trade,ticker", "--count", "5"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert client.returncode == 0, client.stderr
        events = [json.loads(line)["event"] for line in client.stdout.splitlines() if line.strip()]
        assert events[:2] == ["connected", "subscribed"] and {"trade", "price_update"} <= set(events), events
    finally:
        os.killpg(demo.pid, signal.SIGTERM)  # make and the service it started: their own process group
        demo.wait(timeout=15)


def answer(url: str) -> dict | None:
    try:
        return requests.get(url, timeout=2).json()
    except requests.RequestException:
        return None
