"""A client that stops reading: its backlog is conflated (the newest price of each symbol, every other event in
order), it is cut off once it has stayed behind for SLOW_CLIENT_TIMEOUT (not before), and nobody else notices.

The figures in README.md ("Slow clients") are this test's measurements; MAX_RSS_GROWTH_KB and MAX_P95_MS are
the bounds it holds them to. A slow client that held the others back would hold them for as long as it lags,
seconds, and show in every percentile; p95 rather than p99 keeps one stall of the shared test machine (a
scheduling hiccup of 200 ms delays some 20 consecutive updates) from failing the test.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from streaming.gateway.fastpath.backlog import CHECK_INTERVAL
from tests.e2e.clients import RawClient, RecordingClient
from tests.e2e.process import ServiceProcess
from tests.e2e.test_chaos import proc_status
from tests.fakes.binance import FakeBinance
from tests.helpers import scaled, wait_for
from tests.metrics_samples import metric_value

PREFIX = "websocket_streaming_"
SYMBOLS = 100
TICK_INTERVAL = 0.05  # 100 symbols at 20 ticks/s: 2,000 updates/s for the slow client
BACKLOG_LIMIT = 50
SLOW_TIMEOUT = 3.0
HISTORY_ITEMS = 50
MAX_RSS_GROWTH_KB = 3_000  # what a slow client may cost the server, kernel buffers aside (5.5 MB unconflated)
MAX_P95_MS = 150.0  # a normal client's p95 latency while the slow one lags (scaled by WS_TEST_TIMEOUT_FACTOR)


def counter(service: ServiceProcess, name: str, **labels: str) -> float:
    return metric_value(service.get("/metrics").text, f"{PREFIX}{name}_total", **labels)


def full_histories(client: RecordingClient, symbols: list[str]) -> bool:
    """True once ``client`` has received more than HISTORY_ITEMS updates of each of ``symbols``."""
    seen = Counter(update["symbol"] for update in client.received("price_update"))
    return all(seen[symbol] > HISTORY_ITEMS for symbol in symbols)


def percentile(latencies: list[float], share: float) -> float:
    ordered = sorted(latencies)
    assert len(ordered) >= 100, f"too few updates to measure: {len(ordered)}"
    return ordered[int(len(ordered) * share)]


def test_slow_consumer_is_cut_off_after_the_timeout_without_hurting_others(start_service,
                                                                          fake_binance: FakeBinance) -> None:
    fake_binance.set_tick_interval(TICK_INTERVAL)
    symbols = sorted(fake_binance.perpetual_symbols())[:SYMBOLS]
    # History off: recording 2,000 updates/s, its buffers grow and shrink by megabytes with how far Redis and
    # the event loop lag (on a loaded 2-core machine: +2.5 to +10 MB here, +1.2 to +1.5 MB without it), which
    # is not what being slow costs; the history's own bound is tested in test_history.py
    service = start_service(CLIENT_BACKLOG_LIMIT=str(BACKLOG_LIMIT), SLOW_CLIENT_TIMEOUT=str(SLOW_TIMEOUT),
                            MAX_SYMBOLS_PER_REQUEST="200", HISTORY_ENABLED="false")
    normal = RecordingClient(service.url)
    normal.emit("subscribe", {"symbols": symbols[:5]})
    normal.wait("price_update", count=10)
    # What the 100 symbols cost whoever reads them (their upstream streams, cached prices) is paid before the
    # baseline, by a client that reads (HISTORY_ITEMS updates of each); the slow client subscribes to them
    # within UNSUBSCRIBE_GRACE of its leaving, so that what is measured is what being slow costs.
    reader = RecordingClient(service.url)
    reader.emit("subscribe", {"symbols": symbols})
    wait_for(lambda: full_histories(reader, symbols), timeout=30, message="every symbol's stream is warm")
    reader.close()
    rss_before = proc_status(service.proc.pid)["VmRSS"]
    conflations, disconnects = counter(service, "slow_client_conflations"), counter(service, "slow_client_disconnects")
    normal.clear()

    slow = RawClient(service.url)
    last_quiet = time.monotonic()  # the last moment known to be before its first conflation
    slow.emit("subscribe", {"symbols": symbols})
    # ... and never reads again.

    def conflated() -> bool:
        nonlocal last_quiet
        asked = time.monotonic()
        if counter(service, "slow_client_conflations") > conflations:
            return True
        last_quiet = asked  # the scrape read the counter after `asked`: the conflation came later
        return False

    rss_peak = rss_before
    try:
        wait_for(conflated, timeout=30, message="the slow client's backlog was conflated")
        first_seen = time.monotonic()  # after the first conflation
        last_connected = first_seen  # the last moment known to be before the cut-off

        def cut_off() -> bool:
            nonlocal rss_peak, last_connected
            rss_peak = max(rss_peak, proc_status(service.proc.pid)["VmRSS"])
            asked = time.monotonic()
            if counter(service, "slow_client_disconnects") == disconnects + 1:
                return True
            last_connected = asked
            return False

        wait_for(cut_off, timeout=SLOW_TIMEOUT + 10, message="the slow client was cut off")
        cut_seen = time.monotonic()  # after the cut-off
        wait_for(lambda: service.get("/stats").json()["data"]["connected_clients"] == 1, timeout=10)
    finally:
        slow.close()

    # it was cut off between `at_least` and `at_most` seconds after its first conflation
    at_most, at_least = cut_seen - last_quiet, last_connected - first_seen
    assert at_most >= SLOW_TIMEOUT, f"cut off at most {at_most:.2f}s after its first conflation"
    assert at_least <= SLOW_TIMEOUT + 2 * CHECK_INTERVAL + scaled(1.0), f"cut off {at_least:.2f}s after, or later"
    assert counter(service, "slow_client_dropped_updates") > 0
    during = normal.latencies_ms()
    p95, p99 = percentile(during, 0.95), percentile(during, 0.99)
    assert p95 < scaled(MAX_P95_MS), f"p95 of the normal client while the slow one lagged: {p95:.0f} ms (p99 {p99:.0f})"
    growth = rss_peak - rss_before
    assert growth < MAX_RSS_GROWTH_KB, f"server memory grew by {growth} KB"
    print(f"\nslow client: cut off {at_least:.2f}-{at_most:.2f}s after its first conflation; server "
          f"RSS +{growth} KB at most; normal client p95 {p95:.0f} ms, p99 {p99:.0f} ms over {len(during)} updates")

    normal.clear()
    start = int(time.time() * 1000)
    normal.wait("price_update", lambda d: d["eventTime"] > start, count=100)
    assert percentile(normal.latencies_ms(), 0.95) < scaled(MAX_P95_MS), "the normal client still gets fresh prices"
    normal.close()


def test_a_conflated_client_gets_the_newest_price_of_each_symbol_and_every_other_event_in_order(
    start_service, fake_binance: FakeBinance
) -> None:
    fake_binance.set_tick_interval(TICK_INTERVAL)
    symbols = sorted(fake_binance.perpetual_symbols())[:SYMBOLS]
    # no timeout and no heartbeat during the test: the client stays behind as long as it likes
    service = start_service(CLIENT_BACKLOG_LIMIT=str(BACKLOG_LIMIT), SLOW_CLIENT_TIMEOUT="120",
                            CLIENT_PING_INTERVAL="120", MAX_SYMBOLS_PER_REQUEST="200")
    dropped = counter(service, "slow_client_dropped_updates")
    slow = RawClient(service.url)
    try:
        slow.emit("subscribe", {"symbols": symbols})  # and stops reading
        wait_for(lambda: counter(service, "slow_client_conflations") > 0, timeout=30, message="conflated")
        # events that are not price updates, queued behind the backlog while it is being conflated
        churned = symbols[:5]
        for symbol in churned:
            slow.emit("unsubscribe", {"symbols": [symbol]})
            slow.emit("subscribe", {"symbols": [symbol]})
        slow.emit("no_such_event", {})
        wait_for(lambda: counter(service, "rejected_inputs", code="UNKNOWN_EVENT") == 1, message="events handled")
        reconnects = counter(service, "upstream_reconnects", reason="closed")
        assert fake_binance.drop_all() == 1  # every subscribed symbol: stream_status reconnecting, then live
        wait_for(lambda: counter(service, "upstream_reconnects", reason="closed") > reconnects, timeout=10)
        ticks = fake_binance.tick_count()
        wait_for(lambda: fake_binance.tick_count() > ticks + 20 and len(fake_binance.open_connections()) == 1
                 and {f"{s.lower()}@ticker" for s in symbols} <= fake_binance.subscribed_streams(), timeout=20)
        conflations = counter(service, "slow_client_conflations")
        wait_for(lambda: counter(service, "slow_client_conflations") >= conflations + 2, timeout=10,
                 message="conflated again with the events queued")
        fake_binance.set_tick_interval(3600)  # quiet from now on: the fake's last tick of each symbol is final

        seen: dict[str, int] = {}  # the newest event time read of each symbol, kept up as events arrive
        read = 0

        def caught_up(events: list[tuple[str, Any]]) -> bool:
            """Called after every frame read: linear in the new events, not in all of them."""
            nonlocal read
            for name, data in events[read:]:
                if name == "price_update":
                    seen[data["symbol"]] = data["eventTime"]
            read = len(events)
            return all(seen.get(symbol) == fake_binance.ticker(symbol)["E"] for symbol in symbols)

        try:
            events = slow.read(caught_up, timeout=30)
        except AssertionError as exc:
            behind = {symbol: (seen.get(symbol), fake_binance.ticker(symbol)["E"]) for symbol in symbols
                      if seen.get(symbol) != fake_binance.ticker(symbol)["E"]}
            raise AssertionError(f"{exc}; symbols behind (newest read, newest sent): {behind}") from None
    finally:
        slow.close()

    assert counter(service, "slow_client_dropped_updates") > dropped, "this client's backlog lost older prices"
    updates = [data for name, data in events if name == "price_update"]
    for symbol in symbols:
        times = [u["eventTime"] for u in updates if u["symbol"] == symbol]
        assert times == sorted(set(times)), f"{symbol}: updates out of order or repeated"
        assert times[-1] == fake_binance.ticker(symbol)["E"], f"{symbol}: the newest price arrived last"

    others = [(name, data) for name, data in events if name != "price_update"]
    replies = [(name, data["symbols"]) for name, data in others if name in ("subscribed", "unsubscribed")]
    expected = [("subscribed", symbols)]
    for symbol in churned:
        expected += [("unsubscribed", [symbol]), ("subscribed", [symbol])]
    assert replies == expected
    last_reply = max(i for i, (name, _) in enumerate(others) if name in ("subscribed", "unsubscribed", "error"))
    assert others[last_reply][0] == "error" and others[last_reply][1]["code"] == "UNKNOWN_EVENT"
    assert others[0][0] == "connected"
    statuses = [data for name, data in others[last_reply + 1:] if name == "stream_status"]
    assert len(statuses) == len(others) - last_reply - 1, f"only stream_status after the replies: {others}"
    for symbol in symbols:
        states = [status["state"] for status in statuses if status["symbol"] == symbol]
        assert states == ["reconnecting", "live"], f"{symbol}: {states}"


@pytest.mark.parametrize("trade_limit, slow_timeout", [(BACKLOG_LIMIT, 60.0), (1_000_000, SLOW_TIMEOUT)],
                         ids=["over the trade limit", "behind for the timeout"])
def test_a_client_that_cannot_keep_up_with_its_trades_is_told_so_and_cut_off(
        start_service, fake_binance: FakeBinance, trade_limit: int, slow_timeout: float) -> None:
    """Trades never conflate: a client that stops reading its trades (and so goes over the trade limit, or stays
    behind for SLOW_CLIENT_TIMEOUT) gets an `error` SLOW_CONSUMER in place of its backlog, then the connection
    closes; every trade it did get is in order and without a gap before it."""
    fake_binance.set_tick_interval(TICK_INTERVAL)
    symbols = sorted(fake_binance.perpetual_symbols())[:SYMBOLS]
    service = start_service(CLIENT_BACKLOG_LIMIT=str(BACKLOG_LIMIT), CLIENT_TRADE_BACKLOG_LIMIT=str(trade_limit),
                            SLOW_CLIENT_TIMEOUT=str(slow_timeout), MAX_SYMBOLS_PER_REQUEST="200")
    normal = RecordingClient(service.url)
    normal.emit("subscribe", {"symbols": symbols[:2], "streams": ["trade"]})
    normal.wait("trade", count=10)
    slow = RawClient(service.url)
    slow.emit("subscribe", {"symbols": symbols, "streams": ["trade"]})
    # ... and does not read until the service gives up on it
    wait_for(lambda: "cannot keep up with its trades" in service.log(), timeout=15)
    # what the kernel's buffers hold (megabytes) comes first, at the pace a Python client reads
    events = slow.read(lambda events: any(name == "error" for name, _ in events), timeout=40)
    (error,) = [data for name, data in events if name == "error"]
    assert error["code"] == "SLOW_CONSUMER" and error["missed"] > 0
    assert "cannot keep up with its trades" in error["message"]
    trades = [data for name, data in events if name == "trade"]
    assert trades, "it got trades before it fell behind"
    by_symbol: dict[str, list[int]] = {}
    for trade in trades:
        by_symbol.setdefault(trade["symbol"], []).append(trade["id"])
    for symbol, ids in by_symbol.items():
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{symbol}: a gap or a repeat before the error"
    wait_for(lambda: counter(service, "slow_client_disconnects") >= 1, timeout=5)
    slow.close()
    normal.clear()
    normal.wait("trade", count=5)  # the others go on
    assert normal.sio.connected
