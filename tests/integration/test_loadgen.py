"""bench/loadgen.js counts what a client received: duplicates, out-of-order deliveries and what lies outside the
window, each apart, against a socket.io server that sends a known sequence (tests/integration/scripted_relay.js)."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.perf_processes import Loadgen, node_binary
from tests.e2e.process import ROOT, free_port
from tests.helpers import scaled, wait_for

WINDOW = {"from": 0, "to": 10_000}  # eventTimes in [0, 10000) ms are counted
# One client of BTCUSDT and ETHUSDT, in the order sent. Symbols are apart: ETHUSDT at 1500 after BTCUSDT at
# 3000 is in order. An update outside the window still counts as received for the order: BTCUSDT 4000 after
# 20000 is late.
SENT = [("BTCUSDT", 1000), ("BTCUSDT", 3000), ("ETHUSDT", 1500), ("BTCUSDT", 2000), ("BTCUSDT", 3000),
        ("BTCUSDT", 20_000), ("BTCUSDT", 4000), ("ETHUSDT", 2500), ("BTCUSDT", 500)]
OUT_OF_ORDER = 3  # BTCUSDT 2000 (after 3000), 4000 (after 20000), 500 (after 20000)
DUPLICATES = 1  # BTCUSDT 3000 the second time: a duplicate only, though older than the newest too


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[str]:
    """The scripted server's URL; stopped by its PID afterwards."""
    assert (ROOT / "node_modules" / "socket.io").is_dir(), "run `make node` (npm ci) first"
    port = free_port()
    updates = json.dumps([{"symbol": symbol, "eventTime": at, "price": 1.0} for symbol, at in SENT])
    proc = subprocess.Popen([node_binary(), "tests/integration/scripted_relay.js", str(port), updates], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n", "the scripted relay did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]


def one_message(loadgen: Loadgen, kind: str) -> dict[str, Any]:
    messages, silent = loadgen.collect(kind, timeout=scaled(20))
    assert silent == 0 and len(messages) == 1, f"no {kind!r} message from the loadgen worker"
    return messages[0]


def test_loadgen_counts_out_of_order_deliveries_apart_from_duplicates(relay: str, tmp_path: Path) -> None:
    loadgen = Loadgen([relay], ["BTCUSDT", "ETHUSDT"], per_client=2, clients=1, workers=1,
                      log_path=tmp_path / "loadgen.log", phase_seconds=20, connect_timeout=10, max_seconds=60)
    loadgen.start()
    try:
        assert one_message(loadgen, "connected")["ok"] == 1
        loadgen.send({"cmd": "window", **WINDOW})
        loadgen.send({"cmd": "subscribe"})
        assert one_message(loadgen, "subscribed")["ok"] == 1

        def received() -> int:
            loadgen.send({"cmd": "progress"})
            return one_message(loadgen, "progress")["received"]
        in_window = sum(1 for _, at in SENT if WINDOW["from"] <= at < WINDOW["to"])
        wait_for(lambda: received() == in_window, timeout=10)
        loadgen.send({"cmd": "report"})
        report = one_message(loadgen, "report")
    finally:
        loadgen.stop()
    assert (report["received"], report["outside"]) == (in_window, len(SENT) - in_window)
    assert (report["duplicates"], report["outOfOrder"]) == (DUPLICATES, OUT_OF_ORDER)
    assert report["symbols"]["BTCUSDT"]["unique"] == 5 and report["symbols"]["ETHUSDT"]["unique"] == 2
