"""bench/perf_bybit.py: which of the fake Bybit's tickers messages are price_updates the bench counts as owed."""
from __future__ import annotations

from typing import Any

from bench.perf import BYBIT, SCENARIOS, bybit_skipped
from bench.perf_bybit import SHOWN_FIELDS, BybitTickObserver, ticker_update_times
from streaming.exchanges.bybit.payloads import TICKER_FIELDS

FULL = {"symbol": "BTCUSDT", "lastPrice": "86000.10", "volume24h": "1200.5", "highPrice24h": "87000.00",
        "lowPrice24h": "85000.00", "prevPrice24h": "85500.00", "price24hPcnt": "0.005848", "turnover24h": "1.0e8",
        "markPrice": "86000.00", "indexPrice": "86001.00", "openInterest": "5000", "bid1Price": "86000.00"}


def snapshot(ts: int, **fields: str) -> dict[str, Any]:
    return {"topic": "tickers.BTCUSDT", "type": "snapshot", "data": {**FULL, **fields}, "cs": 1, "ts": ts}


def delta(ts: int, **fields: str) -> dict[str, Any]:
    return {"topic": "tickers.BTCUSDT", "type": "delta", "data": {"symbol": "BTCUSDT", **fields}, "cs": 2, "ts": ts}


def test_snapshots_and_deltas_that_change_a_shown_field_are_updates_and_the_others_are_not() -> None:
    sent = [("a", delta(5, lastPrice="1")),  # before its connection's snapshot: merges into nothing
            ("a", snapshot(10)),
            ("a", delta(11, markPrice="86001.00", openInterest="5001")),  # no shown field
            ("a", delta(12, lastPrice="86000.20")),
            ("a", delta(13, bid1Price="86000.10", indexPrice="86002.00")),  # the book's top and index only
            ("a", delta(14, volume24h="1200.5")),  # a shown field, but the value held: nothing changed
            ("a", delta(15, price24hPcnt="0.005850", markPrice="86002.00")),
            ("a", delta(16, turnover24h="1.1e8"))]
    assert ticker_update_times(sent) == {10, 12, 15, 16}


def test_each_connection_merges_its_own_ticker_and_one_ts_is_one_update() -> None:
    sent = [("a", snapshot(10)), ("a", delta(12, lastPrice="86000.20")),
            ("b", delta(12, lastPrice="86000.20")),  # b has no snapshot yet
            ("b", snapshot(13, lastPrice="86000.20")),  # a reconnect's snapshot: an update
            ("a", delta(14, highPrice24h="87000.00")),  # unchanged for a
            ("b", delta(14, lowPrice24h="84000.00")),  # changed for b
            ("a", delta(14, lowPrice24h="84000.00"))]  # the same message on a: the same update (symbol, ts)
    assert ticker_update_times(sent) == {10, 12, 13, 14}


def test_the_shown_fields_are_the_services() -> None:
    assert SHOWN_FIELDS == TICKER_FIELDS


class Fake:
    """Stands in for a started FakeBybit: the observer reads only `sent(topic)`."""

    def __init__(self, sent: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
        self._sent = sent

    def sent(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        return self._sent.get(topic, [])


def test_the_observer_gives_the_windows_updates_per_symbol() -> None:
    fake = Fake({"tickers.BTCUSDT": [("a", snapshot(100)), ("a", delta(200, lastPrice="2")),
                                     ("a", delta(300, markPrice="3")), ("a", delta(400, lastPrice="4"))]})
    observer = BybitTickObserver(fake, ["BTCUSDT", "ETHUSDT"])  # type: ignore[arg-type]
    assert observer.between(150, 400) == {"BTCUSDT": {200}, "ETHUSDT": set()}
    (remark,) = observer.remarks()
    assert "2 tickers messages in the window, 1 of which changed a shown field" in remark, remark


def test_fanout_runs_the_bybit_target_and_trades_skips_it_with_a_reason() -> None:
    assert BYBIT in SCENARIOS["fanout"].targets
    assert bybit_skipped(SCENARIOS["fanout"]) is None
    reason = bybit_skipped(SCENARIOS["trades"])
    assert reason is not None and "'trade'" in reason
