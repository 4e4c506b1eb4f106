"""streaming.exchanges.binance.recording: the line format, the file of each UTC day, the shift of a replayed frame
and the schedule of loops, against the service's own parser and ordering gates."""
from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Model, Ticker, Trade
from streaming.exchanges.binance.protocol import Reply, StreamBatch, Unrecognised
from streaming.exchanges.binance.recording import (
    LOOP_GAP_MS,
    MAX_PAUSE_MS,
    Playback,
    Record,
    RecordingSummary,
    Scan,
    Timeline,
    day_file,
    decode_record,
    encode_record,
    shift_frame,
)
from streaming.exchanges.binance.streams import MARKET, PUBLIC
from streaming.hub.stores import LatestStore, TradeTape
from tests.recordings import agg_trade, book_ticker, frame, sample_records, ticker

T0 = 1_796_319_680_000  # 2026-12-03T17:41:20Z
START = 1_800_000_000_000  # when the playback starts, epoch ms


def recording() -> list[Record]:
    """Two seconds of BTCUSDT and ETHUSDT: tickers, trades and book tickers, frames received 3 ms after E."""
    return sample_records(T0)


def summarise(records: list[Record]) -> RecordingSummary:
    scan = Scan()
    for record in records:
        scan.add(record)
    return scan.summary()


def play(records: list[Record], loops: int, start: float = START) -> list[tuple[float, Model]]:
    """(due ms, update) of every update of ``loops`` loops."""
    playback = Playback(summarise(records), start)
    out: list[tuple[float, Model]] = []
    for _ in range(loops):
        playback.next_loop()
        for record in records:
            due, message = playback.place(record)
            if isinstance(message, StreamBatch):
                out.extend((due, update) for update in message.updates)
    return out


# -- the line format ---------------------------------------------------------------------------------------------
def test_a_record_is_one_json_line_that_keeps_the_frame_exactly() -> None:
    raw = frame("btcusdt@ticker", ticker("BTCUSDT", T0)) + "  "  # as received, spaces included
    record = Record(T0 + 3.25, MARKET, raw)
    line = encode_record(record)
    assert "\n" not in line
    assert json.loads(line) == {"t": T0 + 3.25, "route": "/market", "frame": raw}
    assert decode_record(line) == record
    assert decode_record(json.dumps({"t": T0, "route": "/public", "frame": "x"})) == Record(float(T0), PUBLIC, "x")


@pytest.mark.parametrize("line, named", [
    ("not json", "JSON line"),
    ("[1, 2]", "object"),
    ('{"route": "/market", "frame": "{}"}', "'t'"),
    ('{"t": "1", "route": "/market", "frame": "{}"}', "'t'"),
    ('{"t": true, "route": "/market", "frame": "{}"}', "'t'"),
    ('{"t": -5, "route": "/market", "frame": "{}"}', "'t'"),
    ('{"t": NaN, "route": "/market", "frame": "{}"}', "'t'"),
    ('{"t": 1, "route": "/private", "frame": "{}"}', "'route'"),
    ('{"t": 1, "frame": "{}"}', "'route'"),
    ('{"t": 1, "route": "/market", "frame": {"stream": "x"}}', "'frame'"),
])
def test_a_line_that_is_no_record_is_refused_naming_what_is_wrong(line: str, named: str) -> None:
    with pytest.raises(ProtocolError, match=named):
        decode_record(line)


def ms(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000


def test_one_file_per_utc_day() -> None:
    assert day_file("recordings/binance", ms("2026-12-03T17:41:20")) == "recordings/binance-2026-12-03.jsonl.gz"
    assert day_file("recordings/binance", ms("2026-12-03T23:59:59.999")) == "recordings/binance-2026-12-03.jsonl.gz"
    assert day_file("recordings/binance", ms("2026-12-04T00:00:00")) == "recordings/binance-2026-12-04.jsonl.gz"
    for prefix in ("rec/b.jsonl.gz", "rec/b.jsonl", "rec/b.gz", "rec/b"):
        assert day_file(prefix, ms("2026-01-02T03:04:05")) == "rec/b-2026-01-02.jsonl.gz", prefix


# -- the shift ---------------------------------------------------------------------------------------------------
def test_the_shift_moves_every_time_and_the_ids_of_each_family_and_symbol() -> None:
    shifts = {("aggregate trade", "BTCUSDT"): 10, ("trade", "BTCUSDT"): 20, ("book update", "BTCUSDT"): 30,
              ("trade", "ETHUSDT"): 1000}
    decoded = json.loads(frame("btcusdt@ticker", ticker("BTCUSDT", T0)))
    shift_frame(decoded, 5000, shifts)
    row = decoded["data"]
    assert (row["E"], row["O"], row["C"]) == (T0 + 5000, T0 - 86_400_000 + 5000, T0 + 5000)
    assert (row["F"], row["L"], row["n"]) == (120, 130, 11)
    decoded = json.loads(frame("btcusdt@aggTrade", agg_trade("BTCUSDT", T0, 7000, 200, 201)))
    shift_frame(decoded, 5000, shifts)
    row = decoded["data"]
    assert (row["E"], row["T"], row["a"], row["f"], row["l"]) == (T0 + 5000, T0 + 4998, 7010, 220, 221)
    assert (row["p"], row["q"], row["m"]) == ("86000.00", "4.577", True)
    decoded = json.loads(frame("btcusdt@bookTicker", book_ticker("BTCUSDT", T0, 9_000_000)))
    shift_frame(decoded, 5000, shifts)
    row = decoded["data"]
    assert (row["E"], row["T"], row["u"]) == (T0 + 5000, T0 + 4996, 9_000_030)
    decoded = json.loads(frame("ethusdt@aggTrade", agg_trade("ETHUSDT", T0, 50, 90, 91)))
    shift_frame(decoded, 0, shifts)
    assert (decoded["data"]["a"], decoded["data"]["f"], decoded["data"]["E"]) == (50, 1090, T0)


def test_the_shift_moves_every_row_of_an_array_and_the_event_time_of_other_events() -> None:
    decoded = json.loads(frame("!ticker@arr", [ticker("BTCUSDT", T0), ticker("ETHUSDT", T0 + 1)]))
    shift_frame(decoded, 7, {})
    assert [row["E"] for row in decoded["data"]] == [T0 + 7, T0 + 8]
    mini = {"e": "24hrMiniTicker", "E": T0, "s": "BTCUSDT", "c": "1.0", "O": 5}
    decoded = {"stream": "btcusdt@miniTicker", "data": mini}
    shift_frame(decoded, 7, {})
    assert decoded["data"]["E"] == T0 + 7 and decoded["data"]["O"] == 5


def test_the_shift_leaves_what_is_not_a_whole_number_and_what_is_no_data_frame() -> None:
    odd = agg_trade("BTCUSDT", T0, 7000, 200, 201)
    odd.update(E="1796319680000", T=True, a=-1, f=200.5)
    decoded = {"stream": "btcusdt@aggTrade", "data": odd}
    shift_frame(decoded, 5000, {("aggregate trade", "BTCUSDT"): 10, ("trade", "BTCUSDT"): 20})
    assert (odd["E"], odd["T"], odd["a"], odd["f"], odd["l"]) == ("1796319680000", True, -1, 200.5, 221)
    for other in ({"result": None, "id": 1}, {"error": {"code": 2, "msg": "x"}, "id": 2}, [1, 2], "text",
                  {"stream": "x", "data": [1, None, "y"]}):
        before = copy.deepcopy(other)
        shift_frame(other, 5000, {})
        assert other == before


# -- the first pass ----------------------------------------------------------------------------------------------
def test_the_scan_finds_the_symbols_streams_and_spans() -> None:
    summary = summarise(recording())
    assert summary.frames == 21 and summary.data_frames == 20
    assert summary.symbols == {"BTCUSDT", "ETHUSDT"}
    assert summary.streams == {MARKET: {"btcusdt@ticker", "btcusdt@aggTrade", "ethusdt@aggTrade"},
                               PUBLIC: {"btcusdt@bookTicker"}}
    assert summary.first_t == T0 - 50 and summary.last_t == T0 + 2005
    assert summary.id_spans == {("aggregate trade", "BTCUSDT"): 5, ("aggregate trade", "ETHUSDT"): 5,
                                ("trade", "BTCUSDT"): 209 - 200 + 1, ("trade", "ETHUSDT"): 5,
                                ("book update", "BTCUSDT"): 29}
    # from the earliest time (the reply's receive time) to the latest (the last book ticker's receive time)
    assert summary.period_ms == 2005 + 50 + LOOP_GAP_MS


def test_a_frame_that_is_not_json_is_classified_not_raised() -> None:
    scan = Scan()
    assert isinstance(scan.add(Record(T0, MARKET, "{not json")), Unrecognised)
    assert isinstance(scan.add(Record(T0, MARKET, '{"result":null,"id":3}')), Reply)
    summary = scan.summary()
    assert summary.frames == 2 and summary.data_frames == 0 and not summary.symbols
    playback = Playback(summary, START)
    playback.next_loop()
    assert isinstance(playback.place(Record(T0, MARKET, "{not json"))[1], Unrecognised)


# -- playback ----------------------------------------------------------------------------------------------------
def test_loop_zero_keeps_prices_spacing_and_ids_and_moves_times_to_now() -> None:
    records = recording()
    played = play(records, 1)
    trades = [update for _, update in played if isinstance(update, Trade) and update.symbol == "BTCUSDT"]
    assert [(t.trade_id, t.price, t.quantity) for t in trades] == [(7000 + s, f"8600{s}.00", "4.577")
                                                                   for s in range(5)]
    shift = START - (T0 - 50)  # the first record (the reply) is received at START
    assert [t.event_time for t in trades] == [T0 + 500 * s + shift for s in range(5)]
    assert [t.trade_time for t in trades] == [T0 + 500 * s - 2 + shift for s in range(5)]
    dues = [due for due, update in played if isinstance(update, Ticker)]
    assert dues == [500 * s + 53 for s in range(5)], "due as recorded: ms after the first record"
    tickers = [update for _, update in played if isinstance(update, Ticker)]
    assert [t.price for t in tickers] == [f"8600{s}.10" for s in range(5)]


def test_each_loop_moves_times_by_the_period_and_ids_by_their_span() -> None:
    records = recording()
    summary = summarise(records)
    played = play(records, 3)
    btc = [(due, u) for due, u in played if isinstance(u, Trade) and u.symbol == "BTCUSDT"]
    assert len(btc) == 15
    for index, (due, trade) in enumerate(btc):
        loop, step = divmod(index, 5)
        assert trade.trade_id == 7000 + step + 5 * loop, "aggregate ids consecutive across loops"
        assert trade.first_trade_id == 200 + 2 * step + 10 * loop, "trade ids consecutive across loops"
        assert trade.event_time == START + 50 + 500 * step + loop * summary.period_ms
        assert due == 53 + 500 * step + loop * summary.period_ms
        assert trade.price == f"8600{step}.00"
    books = [u for _, u in played if isinstance(u, BookTicker)]
    assert [b.update_id for b in books[4:7]] == [9_000_028, 9_000_029, 9_000_036]


def test_the_ordering_gates_pass_every_looped_update() -> None:
    """Each kind's gate (the stores the fan-out offers updates to) accepts every update of five loops."""
    tickers: LatestStore[Ticker] = LatestStore()
    books: LatestStore[BookTicker] = LatestStore()
    tape = TradeTape()
    gates = {Ticker: tickers.offer, BookTicker: books.offer, Trade: tape.offer}
    played = play(recording(), 5)
    refused = [update for _, update in played if not gates[type(update)](update)]  # type: ignore[operator]
    assert not refused
    assert tape.recent("BTCUSDT", 25) is not None, "no gap in the aggregate ids"


def test_a_loop_starts_live_again_when_the_replay_is_slower_than_recorded() -> None:
    records = recording()
    summary = summarise(records)
    playback = Playback(summary, START)
    first_ticker = records[1]
    playback.next_loop(START)
    assert playback.place(first_ticker)[1].updates[0].event_time == START + 50  # type: ignore[union-attr]
    later = START + 10 * summary.period_ms  # at a tenth of the recorded speed, loop 1 starts this late
    playback.next_loop(later)
    due, message = playback.place(first_ticker)
    assert message.updates[0].event_time == later + 50, "live again"  # type: ignore[union-attr]
    assert due == summary.period_ms, "still due one period after the start of playback, at speed 1"
    playback.next_loop(later)  # faster than recorded: now is earlier than one period after the last loop
    assert playback.place(first_ticker)[1].updates[0].event_time == later + summary.period_ms + 50  # type: ignore


def test_a_replay_that_starts_later_is_shifted_further() -> None:
    first = play(recording(), 1, START)[0][1]
    later = play(recording(), 1, START + 60_000)[0][1]
    assert later.event_time - first.event_time == 60_000


def test_long_pauses_are_replayed_as_max_pause_and_the_times_after_them_still_look_live() -> None:
    records = recording()
    hour = 3_600_000
    timeline = Timeline()
    assert [timeline.place(t) for t in (0.0, 10.0, 10.0 + hour, 20.0 + hour)] == [
        0.0, 10.0, 10.0 + MAX_PAUSE_MS, 20.0 + MAX_PAUSE_MS]
    assert timeline.place(5.0 + hour) == 20.0 + MAX_PAUSE_MS, "time running back does not move replay time back"
    both = records + [Record(r.t + hour, r.route, _moved(r.frame, hour)) for r in records[1:]]
    summary = summarise(both)
    assert summary.period_ms < 10_000 + LOOP_GAP_MS
    played = play(both, 2)
    for due, update in played:
        assert abs(update.event_time - (START + due)) < 100, "each update carries about the time it is due"
    tickers: LatestStore[Ticker] = LatestStore()
    assert all(tickers.offer(u) for _, u in played if isinstance(u, Ticker))


def _moved(raw: str, by: int) -> str:
    decoded = json.loads(raw)
    shift_frame(decoded, by, {})
    return json.dumps(decoded)
