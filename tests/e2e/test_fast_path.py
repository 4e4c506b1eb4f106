"""The fast path and the libraries' own delivery (FAST_PATH=false) send the same bytes.

Two services are fed the same ticks by one fake exchange, one with each path. For every update both delivered
(tickers, trades — coalesced into one write per window on the fast path — and book tickers), the raw WebSocket
frames are byte for byte the same, and python-socketio and socket.io-client decode the same events, once each
frame's position is set aside: the two services keep histories of their own, so their offsets and epochs differ.
"""
from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from tests.e2e.clients import RawClient, RecordingClient
from tests.e2e.process import ROOT, ServiceProcess
from tests.helpers import wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STREAMS = ["ticker", "trade", "book"]
UPDATES = ("price_update", "trade", "book_ticker")
PREFIX = "websocket_streaming_"
ENOUGH = 12  # updates of each event both paths delivered, to compare
POSITION = re.compile(r',"offset":[0-9]+,"epoch":"[0-9a-f]+"}')  # the end of every update's frame


def unpositioned_frame(text: str) -> str:
    stripped, found = POSITION.subn("}", text)
    assert found == 1, f"no position at the end of {text[:200]}"
    return stripped


def key(event: str, update: dict[str, Any]) -> tuple[str, str, int]:
    """An update's identity: its event, symbol and its kind's key (trade id, update id, else event time)."""
    return event, update["symbol"], update.get("id", update.get("updateId", update["eventTime"]))


def by_tick(events: list[tuple[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {key(event, update): {k: v for k, v in update.items() if k not in ("offset", "epoch")}
            for event, update in events if event in UPDATES}


def enough(shared: list[tuple[str, str, int]]) -> bool:
    return all(sum(1 for k in shared if k[0] == event) >= ENOUGH for event in UPDATES)


def common(first: dict, second: dict) -> list:
    return sorted(set(first) & set(second))


def node_updates(service: ServiceProcess, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["node", "docs/examples/node-client.js", "--url", service.url, "--symbols",
                             ",".join(SYMBOLS), "--streams", ",".join(STREAMS), "--count", str(count)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_both_paths_deliver_byte_identical_streams(start_service) -> None:
    fast = start_service()
    library = start_service(FAST_PATH="false", REDIS_ENABLED="false")  # one history recorder per Redis database
    assert fast.metric(PREFIX + "fast_path") == 1 and library.metric(PREFIX + "fast_path") == 0
    assert "fast path on" in fast.log() and "fast path off" in library.log()
    services = {"fast": fast, "library": library}
    raw = {name: RawClient(service.url, receive_buffer=1 << 20) for name, service in services.items()}
    python = {name: RecordingClient(service.url) for name, service in services.items()}
    node = {name: node_updates(service, 12 * ENOUGH) for name, service in services.items()}
    try:
        for name in services:
            raw[name].emit("subscribe", {"symbols": SYMBOLS, "streams": STREAMS})
            python[name].call("subscribe", {"symbols": SYMBOLS, "streams": STREAMS})

        def frames_by_tick(name: str) -> dict[tuple[str, str, int], str]:
            frames = {}
            for text in raw[name].frames:
                event, data = json.loads(text[2:])
                if event in UPDATES:
                    frames[key(event, data)] = unpositioned_frame(text)
            return frames

        # each read blocks on its own socket: read one more event from each in turn until they overlap enough
        for _ in range(120 * ENOUGH):
            if enough(common(frames_by_tick("fast"), frames_by_tick("library"))):
                break
            for client in raw.values():
                had = len(client.events)
                client.read(lambda events, had=had: len(events) > had, timeout=10)
        fast_frames, library_frames = frames_by_tick("fast"), frames_by_tick("library")
        shared = common(fast_frames, library_frames)
        assert enough(shared), f"only {len(shared)} updates delivered by both"
        for tick in shared:
            assert fast_frames[tick] == library_frames[tick], tick

        wait_for(lambda: enough(common(*(by_tick(python[n].events) for n in services))),
                 timeout=30, message="python-socketio clients: updates of each kind delivered by both")
        seen = {name: by_tick(python[name].events) for name in services}
        for tick in common(seen["fast"], seen["library"]):
            assert seen["fast"][tick] == seen["library"][tick], tick

        outputs = {name: process.communicate(timeout=60) for name, process in node.items()}
        decoded = {}
        for name, (stdout, stderr) in outputs.items():
            assert node[name].returncode == 0, stderr
            lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
            decoded[name] = by_tick([(line["event"], line["data"]) for line in lines])
        shared_node = common(decoded["fast"], decoded["library"])
        assert enough(shared_node), f"socket.io-client: only {len(shared_node)} updates delivered by both"
        for tick in shared_node:
            assert decoded["fast"][tick] == decoded["library"][tick], tick
    finally:
        for process in node.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
        for client in (*raw.values(), *python.values()):
            client.close()
    # the fast path wrote directly; the libraries' own delivery queued everything
    assert fast.metric(PREFIX + "deliveries_total", path="direct") > 0
    assert library.metric(PREFIX + "deliveries_total", path="direct") == 0
    assert library.metric(PREFIX + "deliveries_total", path="queued") > 0
