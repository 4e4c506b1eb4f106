"""streaming.upstream.recorder: frames to gzip JSON Lines on real files, one per UTC day, from a task on threads."""
from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from streaming.exchanges.recording import Record, decode_record
from streaming.upstream.recorder import FLUSH_INTERVAL, FrameRecorder
from streaming.upstream.replay import read_records
from tests.helpers import wait_for
from tests.integration.conftest import ThreadTasks

FRAME = b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1796319680000,"s":"BTCUSDT"}}'


def ms(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000


def lines(path: Path) -> list[Record]:
    with gzip.open(path, "rt", encoding="utf-8") as file:  # the whole file: fails on a truncated one
        return [decode_record(line) for line in file]


def test_frames_are_written_as_received_one_file_per_utc_day(tmp_path: Path, tasks: ThreadTasks) -> None:
    recorder = FrameRecorder(tmp_path / "rec" / "binance", tasks)
    recorder.start()
    before, after = ms("2026-12-03T23:59:59.998"), ms("2026-12-04T00:00:00.001")
    recorder.offer("binance", "/market", FRAME, before)
    recorder.offer("binance", "/public", "text, not bytes ü", before + 1)
    recorder.offer("bybit", "/v5/public/linear", '{"op":"ping"}', before + 1.5)
    recorder.offer("binance", "/market", FRAME, after)
    recorder.stop()
    first, second = tmp_path / "rec" / "binance-2026-12-03.jsonl.gz", tmp_path / "rec" / "binance-2026-12-04.jsonl.gz"
    assert recorder.paths == [str(first), str(second)]
    assert lines(first) == [Record(before, "/market", FRAME.decode()),
                            Record(before + 1, "/public", "text, not bytes ü"),
                            Record(before + 1.5, "/v5/public/linear", '{"op":"ping"}', "bybit")]
    assert lines(second) == [Record(after, "/market", FRAME.decode())]
    assert (recorder.written, recorder.dropped) == (4, 0)
    assert json.loads(gzip.open(second, "rt").read())["frame"] == FRAME.decode(), "the frame as a JSON string"


def test_a_second_run_appends_to_the_day_s_file(tmp_path: Path, tasks: ThreadTasks) -> None:
    for run in range(2):
        recorder = FrameRecorder(tmp_path / "binance.jsonl.gz", tasks)
        recorder.start()
        recorder.offer("binance", "/market", FRAME, ms("2026-12-03T10:00:00") + run)
        recorder.stop()
    path = tmp_path / "binance-2026-12-03.jsonl.gz"
    assert [record.t for record in lines(path)] == [ms("2026-12-03T10:00:00"), ms("2026-12-03T10:00:00") + 1]


def test_a_full_queue_drops_and_counts_and_never_waits(tmp_path: Path, tasks: ThreadTasks) -> None:
    recorder = FrameRecorder(tmp_path / "binance", tasks, queue_limit=3)  # its writer not started yet
    started = time.perf_counter()
    for index in range(1000):
        recorder.offer("binance", "/market", FRAME, ms("2026-12-03T10:00:00") + index)
    assert time.perf_counter() - started < 0.5
    assert (recorder.offered, recorder.dropped, recorder.status()["queued"]) == (1000, 997, 3)
    recorder.start()
    recorder.stop()
    assert recorder.written == 3
    assert [record.t - ms("2026-12-03T10:00:00") for record in lines(tmp_path / "binance-2026-12-03.jsonl.gz")] \
        == [0, 1, 2], "the first ones are kept, the newest dropped"


def test_what_is_written_can_be_read_while_recording_goes_on(tmp_path: Path, tasks: ThreadTasks) -> None:
    """A sync flush every FLUSH_INTERVAL: a recorder that is killed leaves a file readable up to its last flush."""
    recorder = FrameRecorder(tmp_path / "binance", tasks)
    recorder.start()
    at = time.time() * 1000
    recorder.offer("binance", "/market", FRAME, at)
    try:
        path = Path(wait_for(lambda: recorder.paths and recorder.paths[0], timeout=2))

        def readable() -> list[Record]:
            return list(read_records([path], lambda *bad: None))

        assert wait_for(readable, timeout=FLUSH_INTERVAL + 2) == [Record(at, "/market", FRAME.decode())]
    finally:
        recorder.stop()
    assert lines(path) == [Record(at, "/market", FRAME.decode())]


def test_a_file_that_cannot_be_written_costs_the_frames_not_the_reader(tmp_path: Path, tasks: ThreadTasks) -> None:
    (tmp_path / "blocked").write_text("a file where a directory should be")
    errors: list[str] = []
    recorder = FrameRecorder(tmp_path / "blocked" / "binance", tasks, on_error=errors.append)
    recorder.start()
    for index in range(5):
        recorder.offer("binance", "/market", FRAME, ms("2026-12-03T10:00:00") + index)
    wait_for(lambda: recorder.dropped == 5, timeout=2)
    recorder.stop()
    assert recorder.written == 0 and errors == ["upstream recorder"]
