"""streaming.exchanges.recording with Binance's frames: the line format, the file of each UTC day, the shift of a
replayed frame and the schedule of loops, against the service's own parser and ordering gates."""
from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Model, Ticker, Trade
from streaming.exchanges.binance.adapter import BINANCE_EXCHANGE
from streaming.exchanges.binance.protocol import Reply, StreamBatch, Unrecognised
from streaming.exchanges.binance.streams import MARKET, PUBLIC
from streaming.exchanges.bybit.adapter import BYBIT_EXCHANGE
from streaming.exchanges.recording import (
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
)
from streaming.exchanges.recording import shift_frame as shift_any_frame
from streaming.hub.stores import LatestStore, TradeTape
from tests.recordings import agg_trade, book_ticker, bybit_sample_records, frame, sample_records, ticker

T0 = 1_796_319_680_000  # 2026-12-03T17:41:20Z
START = 1_800_000_000_000  # when the playback starts, epoch ms


def shift_frame(frame: object, time_shift: int, id_shifts: dict[tuple[str, str], int]) -> None:
    shift_any_frame(BINANCE_EXCHANGE, frame, time_shift, id_shifts)


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
    assert json.loads(line) == {"t": T0 + 3.25, "exchange": "binance", "route": "/market", "frame": raw}
    assert decode_record(line) == record
    assert decode_record(json.dumps({"t": T0, "route": "/public", "frame": "x"})) == Record(float(T0), PUBLIC, "x"), \
        "a line without 'exchange' is Binance's (recordings made before there were two)"
    bybit = Record(T0, "/v5/public/linear", "{}", "bybit")
    assert decode_record(encode_record(bybit)) == bybit


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
    ('{"t": 1, "exchange": "kraken", "route": "/market", "frame": "{}"}', "'exchange'"),
    ('{"t": 1, "exchange": 7, "route": "/market", "frame": "{}"}', "'exchange'"),
    ('{"t": 1, "exchange": "bybit", "route": "/market", "frame": "{}"}', "bybit's /v5/public/linear"),
    ('{"t": 1, "exchange": "binance", "route": "/v5/public/linear", "frame": "{}"}', "'route'"),
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
    assert summary.symbols == {"binance": {"BTCUSDT", "ETHUSDT"}}
    assert summary.streams == {("binance", MARKET): {"btcusdt@ticker", "btcusdt@aggTrade", "ethusdt@aggTrade"},
                               ("binance", PUBLIC): {"btcusdt@bookTicker"}}
    assert summary.first_t == T0 - 50 and summary.last_t == T0 + 2005
    assert summary.id_spans == {("binance", "aggregate trade", "BTCUSDT"): 5,
                                ("binance", "aggregate trade", "ETHUSDT"): 5,
                                ("binance", "trade", "BTCUSDT"): 209 - 200 + 1, ("binance", "trade", "ETHUSDT"): 5,
                                ("binance", "book update", "BTCUSDT"): 29}
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


# -- Bybit's frames ----------------------------------------------------------------------------------------------
BYBIT_ROUTE = "/v5/public/linear"


def bybit_recording() -> list[Record]:
    return bybit_sample_records(T0)


def test_bybit_s_shift_moves_its_times_and_its_ids_per_symbol() -> None:
    shifts = {("trade seq", "BTCUSDT"): 10, ("book u", "BTCUSDT"): 20, ("book seq", "BTCUSDT"): 30,
              ("trade seq", "ETHUSDT"): 1000}
    ticker_frame, trade_frame, book_frame = (json.loads(record.frame) for record in bybit_recording()[1:4])
    for decoded in (ticker_frame, trade_frame, book_frame):
        shift_any_frame(BYBIT_EXCHANGE, decoded, 5000, shifts)
    assert ticker_frame["ts"] == T0 + 5000
    assert ticker_frame["data"]["nextFundingTime"] == "1760342400000", "a time written as a string stays"
    assert ticker_frame["cs"] == 9000 and ticker_frame["data"]["lastPrice"] == "66660.60"
    assert (trade_frame["ts"], trade_frame["data"][0]["T"], trade_frame["data"][0]["seq"]) == (
        T0 + 5000, T0 + 4998, 5010)
    assert (book_frame["ts"], book_frame["cts"], book_frame["data"]["u"], book_frame["data"]["seq"]) == (
        T0 + 5000, T0 + 4999, 120, 8030)
    for other in ({"success": True, "op": "subscribe"}, {"topic": "kline.1.BTCUSDT", "ts": 5, "data": []},
                  {"topic": 7, "ts": 5}, [1], "text"):
        before = copy.deepcopy(other)
        shift_any_frame(BYBIT_EXCHANGE, other, 5000, shifts)
        assert other == before


def test_a_recording_of_both_exchanges_is_summarised_per_exchange() -> None:
    records = sorted(recording() + bybit_recording(), key=lambda record: record.t)
    summary = summarise(records)
    assert summary.symbols == {"binance": {"BTCUSDT", "ETHUSDT"}, "bybit": {"BTCUSDT"}}
    assert summary.streams_of("bybit", BYBIT_ROUTE) == {"tickers.BTCUSDT", "publicTrade.BTCUSDT",
                                                         "orderbook.1.BTCUSDT"}
    assert summary.streams_of("binance", PUBLIC) == {"btcusdt@bookTicker"}
    assert summary.id_spans[("bybit", "trade seq", "BTCUSDT")] == 13
    assert summary.id_spans[("bybit", "book u", "BTCUSDT")] == 5
    assert summary.id_spans[("bybit", "book seq", "BTCUSDT")] == 13
    assert summary.id_spans[("binance", "aggregate trade", "BTCUSDT")] == 5, "each exchange's own"


def test_bybit_s_loops_merge_its_deltas_and_pass_every_ordering_gate() -> None:
    """Each delta is merged on the snapshot by the parser of live frames, loop after loop; ids and times move
    on, so the gates the fan-out offers updates to accept every one of them."""
    records = bybit_recording()
    summary = summarise(records)
    played = play(records, 3)
    tickers = [update for _, update in played if isinstance(update, Ticker)]
    assert [t.price for t in tickers] == [f"6666{s}.60" for s in range(5)] * 3
    assert {(t.volume, t.high, t.low, t.exchange) for t in tickers} == {("73191.3870", "79266.30", "65076.90",
                                                                           "bybit")}, "merged on the snapshot"
    assert [t.event_time for t in tickers[:6]] == [START + 50 + 500 * s for s in range(5)] + [
        START + 50 + summary.period_ms]
    books = [update for _, update in played if isinstance(update, BookTicker)]
    assert [(b.bid, b.ask) for b in books[:5]] == [(f"6666{s}.50", "66670.00") for s in range(5)]
    assert [b.update_id for b in books[4:7]] == [8012, 8013, 8016], "seq moves on by its span (13)"
    trades = [update for _, update in played if isinstance(update, Trade)]
    assert [t.trade_id for t in trades[4:7]] == [5012 * 1024, 5013 * 1024, 5016 * 1024]
    latest_tickers: LatestStore[Ticker] = LatestStore()
    latest_books: LatestStore[BookTicker] = LatestStore()
    tape = TradeTape()
    gates = {Ticker: latest_tickers.offer, BookTicker: latest_books.offer, Trade: tape.offer}
    assert not [update for _, update in played if not gates[type(update)](update)]  # type: ignore[operator]
