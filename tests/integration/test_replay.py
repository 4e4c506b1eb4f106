"""streaming.upstream.replay on real files, on threads: reading recordings, playing them to a sink in order and
loop after loop, the stand-in pools and REST client."""
from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streaming.core.errors import UpstreamUnavailableError
from streaming.core.models import BookTicker, Model, Ticker, Trade
from streaming.exchanges.binance.adapter import BINANCE_EXCHANGE
from streaming.exchanges.binance.streams import MARKET, PUBLIC
from streaming.exchanges.bybit.adapter import BYBIT_EXCHANGE
from streaming.exchanges.messages import StreamBatch
from streaming.exchanges.recording import Record, encode_record
from streaming.exchanges.registry import EXCHANGES
from streaming.upstream.replay import Replay, ReplayRest, read_records
from tests.helpers import wait_for
from tests.integration.conftest import ThreadTasks
from tests.recordings import bybit_sample_records, sample_records, write_recording

T0 = 1_796_319_680_000


class Sink:
    """Where the replay delivers: keeps every update in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.updates: list[Model] = []
        self.arrivals: list[float] = []

    def on_updates(self, batch: StreamBatch, received_at: float) -> None:
        with self.lock:
            self.updates.extend(batch.updates)
            self.arrivals.extend(time.monotonic() for _ in batch.updates)

    def of(self, kind: type) -> list[Model]:
        with self.lock:
            return [update for update in self.updates if isinstance(update, kind)]


@pytest.fixture
def replays(tasks: ThreadTasks) -> Iterator[Callable[..., Replay]]:
    """Factory: replays(paths, sink, speed=..., loop=..., exchanges=...) -> a started Replay (stopped at
    teardown); every exchange enabled unless ``exchanges`` says otherwise."""
    made: list[Replay] = []

    def make(paths: list[Path], sink: Sink, exchanges: Any = EXCHANGES, **options: Any) -> Replay:
        replay = Replay(paths, sink, tasks, exchanges, name="test recording", **options)
        made.append(replay)
        replay.start()
        return replay

    yield make
    for replay in made:
        replay.stop()


def test_records_are_read_from_gzip_and_plain_files_in_order(tmp_path: Path) -> None:
    records = sample_records(T0)
    first = write_recording(tmp_path / "a.jsonl.gz", records[:10])
    second = write_recording(tmp_path / "b.jsonl", records[10:], compress=False)
    assert list(read_records([first, second], lambda *bad: pytest.fail(f"bad line {bad}"))) == records


def test_bad_lines_and_a_truncated_file_are_reported_and_skipped(tmp_path: Path) -> None:
    records = sample_records(T0)
    lines = [encode_record(record) for record in records[:3]]
    text = "\n".join([lines[0], "not a record", "", lines[1], '{"t": 1, "route": "/x", "frame": ""}', lines[2]])
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(text.encode()))
    cut = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress("".join(encode_record(record) + "\n" for record in records).encode())
    cut.write_bytes(whole[: len(whole) // 2])  # a recorder killed mid-write
    reported: list[tuple[str, int, str]] = []
    read = list(read_records([bad, cut, tmp_path / "missing.jsonl.gz"],
                             lambda path, number, why: reported.append((path.name, number, why))))
    assert read[:3] == records[:3] and 0 < len(read) - 3 < len(records)
    assert read[3:] == records[: len(read) - 3], "the cut file is read up to where it ends"
    assert [(name, number) for name, number, _ in reported[:2]] == [("bad.jsonl.gz", 2), ("bad.jsonl.gz", 5)]
    assert "JSON" in reported[0][2] and "'route'" in reported[1][2]
    assert [name for name, _, why in reported[2:]] == ["cut.jsonl.gz", "missing.jsonl.gz"]
    assert all("unreadable" in why for _, _, why in reported[2:])


def test_a_replay_plays_every_frame_once_through_the_parser_and_ends(tmp_path: Path, replays) -> None:
    path = write_recording(tmp_path / "r.jsonl.gz", sample_records(T0))
    sink = Sink()
    replay = replays([path], sink, speed=0, loop=False)
    wait_for(lambda: replay.state == "stopped", timeout=5)
    trades = sink.of(Trade)
    assert [(t.symbol, t.trade_id, t.price) for t in trades if t.symbol == "BTCUSDT"] == [
        ("BTCUSDT", 7000 + step, f"8600{step}.00") for step in range(5)]
    assert len(sink.of(Ticker)) == 5 and len(sink.of(BookTicker)) == 5 and len(trades) == 10
    assert replay.describe()["state"] == "finished" and replay.describe()["frames_replayed"] == 20
    assert replay.messages == {("binance", MARKET): 15, ("binance", PUBLIC): 5, ("bybit", "/v5/public/linear"): 0}
    shift = sink.of(Ticker)[0].event_time - T0
    assert abs(shift - (time.time() * 1000 - (T0 - 50))) < 5000, "times moved to when the replay started"


def test_a_looping_replay_continues_ids_and_times(tmp_path: Path, replays) -> None:
    path = write_recording(tmp_path / "r.jsonl.gz", sample_records(T0))
    sink = Sink()
    replay = replays([path], sink, speed=0, loop=True)
    wait_for(lambda: replay.loops >= 3, timeout=5)
    replay.stop()
    ids = [t.trade_id for t in sink.of(Trade) if t.symbol == "BTCUSDT"]
    assert ids[:15] == list(range(7000, 7015))
    times = [t.event_time for t in sink.of(Ticker)]
    assert all(later > earlier for earlier, later in zip(times, times[1:]))


def test_the_recorded_spacing_divided_by_the_speed(tmp_path: Path, replays) -> None:
    path = write_recording(tmp_path / "r.jsonl.gz", sample_records(T0, steps=5, spacing=500))  # 2 s of data
    sink = Sink()
    replay = replays([path], sink, speed=4, loop=False)
    wait_for(lambda: replay.state == "stopped", timeout=5)
    with sink.lock:
        arrivals = [at for at, update in zip(sink.arrivals, sink.updates) if isinstance(update, Ticker)]
    assert 0.4 < arrivals[-1] - arrivals[0] < 0.8, "2 s of recording at 4x: about 0.5 s"


def test_the_stand_ins_for_the_pools_and_the_rest_client(tmp_path: Path, replays) -> None:
    path = write_recording(tmp_path / "r.jsonl.gz", sample_records(T0, steps=40, spacing=100))
    replay = replays([path], Sink(), speed=1, loop=True)
    rest = ReplayRest(replay, BINANCE_EXCHANGE)
    assert rest.tradable_symbols() == {"BTCUSDT", "ETHUSDT"}
    with pytest.raises(UpstreamUnavailableError, match="holds no market data of Bybit"):
        ReplayRest(replay, BYBIT_EXCHANGE).tradable_symbols()
    for call in (lambda: rest.ticker("BTCUSDT"), lambda: rest.book_ticker("BTCUSDT"),
                 lambda: rest.agg_trades("BTCUSDT", 10)):
        with pytest.raises(UpstreamUnavailableError, match="not used while replaying"):
            call()
    assert not rest.available() and rest.gate.blocked_for() == 0
    pools = replay.pools()
    market, public = pools["binance", MARKET], pools["binance", PUBLIC]
    assert pools["bybit", "/v5/public/linear"].statuses() == [], "no stand-in for what the recording lacks"
    assert market.active_streams() == ["btcusdt@aggTrade", "btcusdt@ticker", "ethusdt@aggTrade"]
    assert public.active_streams() == ["btcusdt@bookTicker"]
    market.pin(["btcusdt@ticker"])
    market.want("ethusdt@aggTrade")
    market.want("btcusdt@ticker")
    market.release("btcusdt@ticker")
    assert market.wanted_streams() == ["btcusdt@ticker", "ethusdt@aggTrade"], "pinned streams stay"
    market.release("ethusdt@aggTrade")
    assert market.wanted_streams() == ["btcusdt@ticker"]
    [status] = market.statuses()
    assert (status.state, status.streams, status.reconnects) == ("live", 3, 0) and "replay" in status.url
    replay.stop()
    assert market.active_streams() == [] and market.statuses()[0].state == "stopped"


def test_a_recording_without_market_data_plays_nothing(tmp_path: Path, replays) -> None:
    path = write_recording(tmp_path / "r.jsonl.gz", [Record(T0, MARKET, '{"result":null,"id":1}')])
    replay = replays([path], Sink(), speed=0, loop=True)
    wait_for(lambda: replay.state == "stopped", timeout=5)
    with pytest.raises(UpstreamUnavailableError, match="no market data"):
        ReplayRest(replay, BINANCE_EXCHANGE).tradable_symbols()
    assert replay.pools()["binance", MARKET].statuses() == []


def test_a_recording_of_both_exchanges_plays_each_through_its_own_parser(tmp_path: Path, replays) -> None:
    records = sorted(sample_records(T0) + bybit_sample_records(T0), key=lambda record: record.t)
    path = write_recording(tmp_path / "r.jsonl.gz", records)
    sink = Sink()
    replay = replays([path], sink, speed=0, loop=False)
    wait_for(lambda: replay.state == "stopped", timeout=5)
    tickers = sink.of(Ticker)
    assert [t.price for t in tickers if t.exchange == "bybit"] == [f"6666{s}.60" for s in range(5)]
    assert {t.volume for t in tickers if t.exchange == "bybit"} == {"73191.3870"}, "deltas merged"
    assert [t.price for t in tickers if t.exchange == "binance"] == [f"8600{s}.10" for s in range(5)]
    assert [b.bid for b in sink.of(BookTicker) if b.exchange == "bybit"] == [f"6666{s}.50" for s in range(5)]
    assert len([t for t in sink.of(Trade) if t.exchange == "bybit"]) == 5
    assert replay.messages == {("binance", MARKET): 15, ("binance", PUBLIC): 5, ("bybit", "/v5/public/linear"): 15}
    assert replay.describe()["symbols"] == ["BTCUSDT", "ETHUSDT", "bybit:BTCUSDT"]
    assert ReplayRest(replay, BYBIT_EXCHANGE).tradable_symbols() == {"BTCUSDT"}
    [status] = replay.pools()["bybit", "/v5/public/linear"].statuses()
    assert (status.exchange, status.streams) == ("bybit", 0), "stopped: nothing is played any more"


def test_frames_of_an_exchange_that_is_not_enabled_are_skipped(tmp_path: Path, replays) -> None:
    records = sorted(sample_records(T0) + bybit_sample_records(T0), key=lambda record: record.t)
    path = write_recording(tmp_path / "r.jsonl.gz", records)
    sink = Sink()
    replay = replays([path], sink, exchanges={"binance": BINANCE_EXCHANGE}, speed=0, loop=False)
    wait_for(lambda: replay.state == "stopped", timeout=5)
    assert {update.exchange for update in sink.updates} == {"binance"}
    assert len(sink.of(Ticker)) == 5
    assert set(replay.pools()) == {("binance", MARKET), ("binance", PUBLIC)}
