"""The README's example clients, run for real against the service: Node (socket.io-client v4) and Python."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.process import ROOT


def run_client(command: list[str]) -> list[dict]:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def check_session(lines: list[dict], symbols: set[str], count: int) -> None:
    events = [line["event"] for line in lines]
    assert events[0] == "connected" and lines[0]["data"]["message"] == "Connected to WebSocket Streaming Service"
    (subscribed,) = [line["data"] for line in lines if line["event"] == "subscribed"]
    assert set(subscribed["symbols"]) == symbols
    updates = [line["data"] for line in lines if line["event"] == "price_update"]
    assert len(updates) >= count and {u["symbol"] for u in updates} <= symbols
    for update in updates:
        assert isinstance(update["price"], float) and isinstance(update["eventTime"], int)


def test_node_example_client(service) -> None:
    assert (ROOT / "node_modules" / "socket.io-client").is_dir(), "run `make test` (it runs npm ci) first"
    lines = run_client(["node", "docs/examples/node-client.js", "--url", service.url,
                        "--symbols", "BTCUSDT,ETHUSDT", "--count", "6"])
    check_session(lines, {"BTCUSDT", "ETHUSDT"}, 6)
    assert lines[-1]["event"] == "unsubscribed" and lines[-1]["data"]["message"] == "Unsubscribed from 2 symbols"


def test_python_example_client(service) -> None:
    lines = run_client([sys.executable, "docs/examples/python-client.py", "--url", service.url,
                        "--symbols", "SOLUSDT", "--count", "3"])
    check_session(lines, {"SOLUSDT"}, 3)


def test_browser_example_page(service, tmp_path) -> None:
    """The README's browser page, in headless Chromium (Debian's package, installed by `make test`)."""
    screenshot = tmp_path / "browser.png"
    result = subprocess.run(["node", "tests/e2e/browser_check.js", service.url, str(screenshot)], cwd=ROOT,
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["pageErrors"] == []
    assert sorted(row[0] for row in shown["rows"]) == ["BTCUSDT", "ETHUSDT"]
    for _symbol, price, change, updated in shown["rows"]:
        assert float(price.replace(",", "")) > 0 and float(change) == float(change)
        assert len(updated) == 12 and updated.count(":") == 2
    assert shown["status"] == "Subscribed to 2 symbols" and shown["updates"] >= 4
    assert screenshot.stat().st_size > 0
