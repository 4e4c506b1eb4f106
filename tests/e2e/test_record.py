"""Recording upstream frames end to end: `python -m streaming.record` against the fake exchange, and the service's
own UPSTREAM_RECORD_FILE tap; what they write is gzip JSON Lines whose frames the parser reads as Binance's, and
what the service recorded plays back through the service."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

from streaming.exchanges.binance.protocol import StreamBatch, parse_message
from streaming.exchanges.binance.streams import MARKET, PUBLIC
from streaming.exchanges.recording import Record, decode_record
from tests.e2e.clients import RecordingClient
from tests.e2e.process import ROOT, ServiceProcess
from tests.fakes.binance import FakeBinance
from tests.helpers import scaled, wait_for


def read(path: Path) -> list[Record]:
    """Every record of a recording, reading it to its gzip end (a file that was not closed fails here)."""
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [decode_record(line) for line in file]


def kinds_by_route(records: list[Record]) -> dict[str, set[tuple[str, str]]]:
    """route -> {(symbol, kind)} of the updates of every data frame."""
    found: dict[str, set[tuple[str, str]]] = {}
    for record in records:
        message = parse_message(record.frame)
        if isinstance(message, StreamBatch):
            found.setdefault(record.route, set()).update((u.symbol, u.kind.value) for u in message.updates)
    return found


def test_the_recorder_writes_every_frame_of_each_route_as_received(fake_binance: FakeBinance,
                                                                  tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BINANCE_")}
    env.update(BINANCE_WS_URL=fake_binance.ws_url, RECONNECT_DELAY="0.5")
    done = subprocess.run(
        [sys.executable, "-m", "streaming.record", "--out", str(tmp_path / "rec" / "binance"),
         "--symbols", "BTCUSDT,ethusdt", "--duration", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=scaled(30),
    )
    assert done.returncode == 0, done.stderr
    [path] = (tmp_path / "rec").glob("binance-*.jsonl.gz")
    assert f"to {path}" in done.stdout, done.stdout
    records = read(path)
    assert len(records) >= 20 and f"recorded {len(records)} frames (0 dropped)" in done.stdout
    both = {"BTCUSDT", "ETHUSDT"}
    assert kinds_by_route(records) == {MARKET: {(s, k) for s in both for k in ("ticker", "trade")},
                                       PUBLIC: {(s, "book") for s in both}}
    sent = {row["a"] for row in fake_binance.trades_sent("BTCUSDT")}
    recorded = {u.trade_id for r in records if isinstance(m := parse_message(r.frame), StreamBatch)
                for u in m.updates if u.kind.value == "trade" and u.symbol == "BTCUSDT"}
    assert recorded and recorded <= sent, "the exchange's own trades"
    paths = {c.path for c in fake_binance.connections()}
    assert paths == {"/market/stream", "/public/stream"}, "the service's routes, nothing un-routed"
    for record in records:
        event_time = max((u.event_time for u in m.updates), default=record.t) \
            if isinstance(m := parse_message(record.frame), StreamBatch) else record.t
        assert event_time - 1000 < record.t < event_time + 1000, "receive time, epoch ms"


def test_the_recorder_refuses_bad_arguments(tmp_path: Path) -> None:
    for arguments in (["--symbols", "BTC-USDT"], ["--streams", "ticker,depth"], ["--duration", "-1"]):
        done = subprocess.run([sys.executable, "-m", "streaming.record", "--out", str(tmp_path / "x"), *arguments],
                              cwd=ROOT, capture_output=True, text=True, timeout=scaled(30))
        assert done.returncode == 2 and "error" in done.stderr, (arguments, done.stderr)
    assert not list(tmp_path.iterdir())


def test_the_service_records_its_upstream_and_plays_it_back(start_service, fake_binance: FakeBinance,
                                                           tmp_path: Path) -> None:
    prefix = tmp_path / "recorded" / "upstream"
    service: ServiceProcess = start_service(UPSTREAM_RECORD_FILE=str(prefix), REDIS_ENABLED="false")
    recording = wait_for(lambda: (view := service.get("/health").json()["upstream"].get("recording"))
                         and view["written"] >= 30 and view, timeout=10)
    assert recording["dropped"] == 0 and recording["file"].startswith(str(prefix) + "-")
    assert service.stop() == 0
    [path] = prefix.parent.glob("upstream-*.jsonl.gz")
    records = read(path)  # flushed and closed on stop
    assert len(records) >= recording["written"]
    defaults = {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"}
    assert kinds_by_route(records)[MARKET] == {(symbol, "ticker") for symbol in defaults}
    prices = {float(m.updates[0].price) for r in records if isinstance(m := parse_message(r.frame), StreamBatch)
              and m.updates and m.updates[0].symbol == "BTCUSDT"}

    replayed = start_service(UPSTREAM_REPLAY_FILE=str(path), UPSTREAM_REPLAY_SPEED="4", REDIS_ENABLED="false")
    client = RecordingClient(replayed.url)
    try:
        client.call("subscribe", {"symbols": ["BTCUSDT"]})
        updates = client.wait("price_update", count=5)
    finally:
        client.close()
    assert {update["price"] for update in updates} <= prices, "the recorded prices"
