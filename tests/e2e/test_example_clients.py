"""The README's example clients, run for real against the service: Node (socket.io-client v4), Python and the
browser page; after a lost connection they come back with the positions they kept and miss nothing."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.clients import unpositioned
from tests.e2e.process import ROOT
from tests.e2e.test_streams import expected_trade
from tests.fakes.proxy import FreezableProxy
from tests.helpers import wait_for


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


def test_browser_example_page(start_service, tmp_path) -> None:
    """The README's browser page, in headless Chromium (Debian's package, installed by `make test`)."""
    service = start_service(RECOVERY_GRACE="30")  # the default: a disconnected client's streams wait for it
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
    # then its transport was closed under it: it subscribed again with the positions it kept, and missed nothing
    channels = {"ticker:BTCUSDT", "ticker:ETHUSDT"}
    first, again = shown["subscribes"]
    assert set(shown["kept"]) == channels and again.get("since") == shown["kept"] and first.get("since") == {}
    assert shown["subscribed"][1]["recovered"] == dict.fromkeys(channels, True)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        updates = [u for u in shown["updatesReceived"] if u["symbol"] == symbol]
        offsets = [u["offset"] for u in updates]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), f"{symbol}: each ticker once, in order"
        # the page's position is the last update it handled, and that update came over the wire
        handled = shown["lastHandled"][symbol]
        assert shown["positions"][f"ticker:{symbol}"] == handled
        assert handled in [{k: u[k] for k in ("offset", "epoch")} for u in updates]


class ExampleProcess:
    """An example client running as a process: its stdout read one JSON line at a time as it comes; stopped by
    its own PID."""

    def __init__(self, command: list[str], stderr_path: Path) -> None:
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="example-client-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                with self._lock:
                    self._lines.append(line)

    def lines(self) -> list[dict]:
        with self._lock:
            return [json.loads(line) for line in self._lines]  # a line that is not one JSON value fails here

    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def stop(self) -> list[dict]:
        """Stop the process and return every line it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()
        return self.lines()


SYMBOL = "ETHUSDT"
TRADES = f"trade:{SYMBOL}"
OUTAGE = 5.0  # seconds the network is down
EXAMPLES = {"node": ["node", "docs/examples/node-client.js"],
            "python": [sys.executable, "docs/examples/python-client.py"]}


def by_connection(lines: list[dict]) -> list[list[dict]]:
    """The lines split at each `connected`: one list per connection, each starting with its `connected`."""
    split: list[list[dict]] = []
    for line in lines:
        if line["event"] == "connected" or not split:
            split.append([])
        split[-1].append(line)
    return split


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_client_back_after_a_5_second_outage_gets_every_missed_trade_once_then_live(
        example: str, start_service, fake_binance, tmp_path) -> None:
    """The network between the client and the service is cut (every connection reset, new ones reset too) for
    5 s: the client's own reconnection brings it back, it subscribes with the positions it kept, and gets the
    trades it missed (recovered: true) then live ones: every trade once, in order, across both connections."""
    service = start_service(RECOVERY_GRACE="30")  # the default: a disconnected client's streams wait for it
    fake_binance.set_tick_interval(0.1)  # 10 trades a second
    with FreezableProxy(service.port) as network:
        client = ExampleProcess([*EXAMPLES[example], "--url", f"http://127.0.0.1:{network.port}", "--symbols",
                                 SYMBOL, "--streams", "trade"], tmp_path / "client.stderr")
        try:
            wait_for(lambda: sum(line["event"] == "trade" for line in client.lines()) >= 10, timeout=15,
                     message=f"10 trades before the outage; stderr: {client.stderr()}")
            network.cut()
            time.sleep(OUTAGE)  # the outage itself: the client keeps retrying and is reset each time
            network.restore()

            def live_after_reconnect() -> bool:
                split = by_connection(client.lines())
                return len(split) == 2 and sum(line["event"] == "trade" and not line["data"].get("recovered")
                                               for line in split[1]) >= 10

            wait_for(live_after_reconnect, timeout=30, message=f"10 live trades after reconnecting; stderr: "
                     f"{client.stderr()}; lines: {[line['event'] for line in client.lines()][-5:]}")
        finally:
            lines = client.stop()
    assert "connection lost" in client.stderr(), client.stderr()
    first, second = by_connection(lines)
    assert [line["event"] for line in first[:2]] == ["connected", "subscribed"]
    assert [line["event"] for line in second[:2]] == ["connected", "subscribed"], "subscribed again at once"
    assert {line["event"] for line in first[2:] + second[2:]} == {"trade"}
    ack, again = first[1]["data"], second[1]["data"]
    assert again["recovered"] == {TRADES: True}, "the second subscribe sent the positions kept as since"
    before = [line["data"] for line in first[2:]]
    after = [line["data"] for line in second[2:]]
    recovered = [t for t in after if t.get("recovered") is True]
    assert after[:len(recovered)] == recovered, "the missed trades first, then live ones"
    assert not any("recovered" in t for t in after[len(recovered):])
    assert len(recovered) >= 0.8 * OUTAGE * 10, f"only {len(recovered)} trades recovered"
    assert again["positions"][TRADES] == {k: recovered[-1][k] for k in ("offset", "epoch")}
    ids = [t["id"] for t in before + after]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "every trade once, in order, none lost at either seam"
    offsets = [t["offset"] for t in before + after]
    start = ack["positions"][TRADES]["offset"] + 1  # the first live trade follows the position subscribed at
    assert offsets == list(range(start, start + len(offsets)))
    assert {t["epoch"] for t in before + after} == {ack["positions"][TRADES]["epoch"]}
    sent = {row["a"]: row for row in fake_binance.trades_sent(SYMBOL)}
    assert [unpositioned(t) for t in before + after] == [expected_trade(sent[i]) for i in ids], "what the exchange sent"


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_client_run_again_with_its_positions_file_gets_the_trades_it_missed_between_runs(
        example: str, start_service, fake_binance, tmp_path) -> None:
    """--positions FILE: a client stopped and started again later (a bot's restart) carries on from the last
    trade it received: the ones it missed in between come first (recovered: true), each once, then live ones."""
    service = start_service(RECOVERY_GRACE="30")
    fake_binance.set_tick_interval(0.1)  # 10 trades a second
    positions = tmp_path / "positions.json"
    command = [*EXAMPLES[example], "--url", service.url, "--symbols", SYMBOL, "--streams", "trade",
               "--positions", str(positions)]
    first = run_client([*command, "--count", "10"])
    assert not first[1]["data"]["recovered"], "nothing to recover on the first run"
    kept = json.loads(positions.read_text())
    last = [line["data"] for line in first if line["event"] == "trade"][-1]
    assert kept == {TRADES: {"offset": last["offset"], "epoch": last["epoch"]}}, "saved on the way out"
    time.sleep(2)  # about 20 trades while no client runs
    second = run_client([*command, "--count", "40"])
    assert second[1]["event"] == "subscribed" and second[1]["data"]["recovered"] == {TRADES: True}
    before = [line["data"] for line in first if line["event"] == "trade"]
    after = [line["data"] for line in second if line["event"] == "trade"]
    recovered = [t for t in after if t.get("recovered")]
    assert len(recovered) >= 10 and after[:len(recovered)] == recovered, "the missed trades first"
    ids = [t["id"] for t in before + after]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "every trade once, in order, across the two runs"
    assert json.loads(positions.read_text()) == {TRADES: {k: after[-1][k] for k in ("offset", "epoch")}}
