"""streaming.gateway.replays on threads, with the in-memory history: a replay sends exactly the range, paced by
its speed, waits while its client has a backlog (never queueing without bound), stops when asked or when the
client goes, and a client may run only so many at once."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from metrics.collectors import ServiceMetrics
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.history import Retention
from streaming.gateway.replays import REPLAY_BACKLOG, REPLAY_DATA, REPLAY_END, Replays, TooManyReplaysError
from streaming.hub.recorder import Recorder
from streaming.runtime.tasks import ThreadTasks
from tests.helpers import wait_for

CHANNEL = Channel(BINANCE, Kind.TRADE, "BTCUSDT")
START = 1_700_000_000.0


class Client:
    """What a replay sends one client, and how many packets it has queued (set by the test)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.queued: int | None = 0
        self.lock = threading.Lock()

    def emit(self, event: str, payload: dict[str, Any], to: str) -> None:
        with self.lock:
            self.sent.append((event, payload))

    def data(self) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for event, payload in self.sent if event == REPLAY_DATA]

    def ends(self) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for event, payload in self.sent if event == REPLAY_END]


@pytest.fixture
def recorded() -> Recorder:
    retention = {kind: Retention(10_000, 1e9) for kind in Kind}
    recorder = Recorder(None, retention, 10_000, 100, ThreadTasks(), ServiceMetrics(CollectorRegistry()))
    for n in range(200):  # one trade every 10 ms of event time: a 2 s span
        recorder.record(CHANNEL, {"symbol": "BTCUSDT", "id": n}, START + n / 100)
    return recorder


def replays(recorder: Recorder, client: Client, most: int = 3) -> Replays:
    return Replays(recorder, client.emit, lambda sid: client.queued, ThreadTasks(),
                   ServiceMetrics(CollectorRegistry()), most)


def test_a_replay_sends_exactly_its_range_in_order_paced_by_its_speed(recorded: Recorder) -> None:
    client = Client()
    began = time.monotonic()
    replay_id = replays(recorded, client).start("sid", CHANNEL, START + 0.5, START + 1.5, speed=2)
    (end,) = wait_for(client.ends, timeout=5)
    took = time.monotonic() - began
    data = client.data()
    assert end == {"replay_id": replay_id, "count": 101}
    assert [d["data"]["id"] for d in data] == list(range(50, 151)), "from and to are inclusive"
    assert [d["data"]["offset"] for d in data] == list(range(51, 152))
    assert {d["event"] for d in data} == {"trade"} and {d["replay_id"] for d in data} == {replay_id}
    assert 0.45 <= took <= 1.0, f"a 1 s span at speed 2 took {took:.2f} s"


def test_at_speed_0_a_replay_waits_for_a_client_that_does_not_read(recorded: Recorder) -> None:
    client = Client()
    client.queued = REPLAY_BACKLOG + 1  # the client reads nothing
    replay_id = replays(recorded, client).start("sid", CHANNEL, 0, START + 10, speed=0)
    time.sleep(0.5)
    assert client.data() == [] and client.ends() == [], "nothing more is queued for a client that is behind"
    client.queued = 0
    wait_for(client.ends, timeout=5)
    assert [d["data"]["id"] for d in client.data()] == list(range(200))
    assert client.ends() == [{"replay_id": replay_id, "count": 200}]


def test_replays_stop_on_request_and_with_their_client_and_are_bounded(recorded: Recorder) -> None:
    client = Client()
    running = replays(recorded, client, most=2)
    first = running.start("sid", CHANNEL, 0, START + 10, speed=0.01)  # would take minutes
    running.start("sid", CHANNEL, 0, START + 10, speed=0.01)
    with pytest.raises(TooManyReplaysError, match="at most 2 at once"):
        running.start("sid", CHANNEL, 0, START + 10, speed=1)
    running.start("other", CHANNEL, 0, START + 10, speed=1)  # another client's replays are its own
    assert running.stop("sid", first) and not running.stop("sid", "nope")
    wait_for(lambda: any(end["replay_id"] == first for end in client.ends()), timeout=5)
    running.drop("sid")
    wait_for(lambda: sum(1 for end in client.ends() if end.get("stopped")) == 2, timeout=5)
    client.queued = None  # gone: its replays end without a word
    running.drop("other")
    time.sleep(0.2)
    assert len(client.ends()) == 2
