"""streaming.upstream.pool + streaming.upstream.connection against the fake exchange, in process, on threads."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import fields

import pytest

import streaming.upstream.pool as pool_module
from streaming.core.pacing import RETRY_JITTER, STEADY_DELAYS
from streaming.exchanges.binance.adapter import BINANCE_EXCHANGE
from streaming.exchanges.binance.protocol import StreamBatch, parse_message
from streaming.exchanges.binance.streams import PUBLIC
from streaming.upstream.connection import Timing, UpstreamConnection
from streaming.upstream.pool import UpstreamPool
from tests.fakes import protocol as fake_protocol
from tests.fakes.binance import FakeBinance
from tests.fakes.proxy import FreezableProxy
from tests.helpers import most_in_any_window, wait_for

TIMING_FIELDS = {f.name for f in fields(Timing)}
INCOMING_PER_SECOND = 10  # Binance's limit of incoming messages per connection (the fake's default)


def ticker(symbol: str) -> str:
    return symbol.lower() + "@ticker"


def tickers(*symbols: str) -> list[str]:
    return [ticker(symbol) for symbol in symbols]


class Recorder:
    """UpstreamObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.symbols: list[str] = []
        self.event_times: dict[str, list[int]] = {}  # symbol -> event time of every tick, in arrival order
        self.events: list[tuple[int, str, str]] = []
        self.kinds: dict[str, set[str]] = {}  # symbol -> the kinds of its updates

    def on_updates(self, batch: StreamBatch, received_at: float) -> None:
        with self.lock:
            for update in batch.updates:
                self.kinds.setdefault(update.symbol, set()).add(update.kind.value)
            self.symbols.extend(t.symbol for t in batch.updates)
            for ticker in batch.updates:
                self.event_times.setdefault(ticker.symbol, []).append(ticker.event_time)

    def on_event(self, connection: UpstreamConnection, event: str, detail: str = "") -> None:
        with self.lock:
            self.events.append((connection.index, event, detail))

    def on_pool_error(self) -> None:
        raise AssertionError("the pool task hit an unexpected error")

    def count(self, symbol: str) -> int:
        with self.lock:
            return self.symbols.count(symbol)

    def reasons(self, event: str) -> list[str]:
        with self.lock:
            return [detail for _, name, detail in self.events if name == event]

    def newer_only(self, symbol: str) -> list[int]:
        """The event times of the symbol's ticks as the fan-out passes them on: each one newer than the last."""
        with self.lock:
            arrivals = list(self.event_times.get(symbol, ()))
        passed: list[int] = []
        for at in arrivals:
            if not passed or at > passed[-1]:
                passed.append(at)
        return passed


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_pool(tasks, recorder: Recorder) -> Iterator:
    pools: list[UpstreamPool] = []

    def make(fake: FakeBinance, **overrides: float) -> UpstreamPool:
        timing = {k: overrides.pop(k) for k in list(overrides) if k in TIMING_FIELDS}
        options = dict(max_streams_per_connection=1024, messages_per_second=4.0, grace=0.2, max_age=3600.0)
        options.update(overrides)
        pool = UpstreamPool(BINANCE_EXCHANGE, fake.ws_url, tasks, recorder,
                            timing=Timing(**{"reconnect_delay": 0.2, **timing}), **options)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop()


def test_pinned_symbols_stream_on_one_market_connection(fake_binance, make_pool, recorder, caplog) -> None:
    caplog.set_level(logging.INFO)
    pool = make_pool(fake_binance)
    pool.pin(tickers("BTCUSDT", "ETHUSDT"))
    pool.start()
    wait_for(lambda: recorder.count("BTCUSDT") >= 2 and recorder.count("ETHUSDT") >= 2)
    (connection,) = fake_binance.open_connections()
    assert connection.path == "/market/stream" and connection.streams == {"btcusdt@ticker", "ethusdt@ticker"}
    assert pool.active_streams() == ["btcusdt@ticker", "ethusdt@ticker"]
    pool.release(ticker("BTCUSDT"))  # pinned: ignored
    assert pool.wanted_streams() == ["btcusdt@ticker", "ethusdt@ticker"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_pool_per_route_carries_only_its_routes_streams(fake_binance, make_pool, recorder) -> None:
    market, public = make_pool(fake_binance), make_pool(fake_binance, route=PUBLIC)
    market.want("btcusdt@aggTrade")
    market.want(ticker("BTCUSDT"))
    public.want("ethusdt@bookTicker")
    market.start()
    public.start()
    wait_for(lambda: recorder.kinds.get("BTCUSDT") == {"ticker", "trade"} and recorder.kinds.get("ETHUSDT"))
    by_path = {c.path: c.streams for c in fake_binance.open_connections()}
    assert by_path == {"/market/stream": {"btcusdt@aggTrade", "btcusdt@ticker"},
                       "/public/stream": {"ethusdt@bookTicker"}}
    assert recorder.kinds["ETHUSDT"] == {"book"}
    assert [s.url for s in public.statuses()] == [fake_binance.ws_url + "/public/stream"]


def test_streams_spread_over_connections_at_the_per_connection_limit(make_pool, recorder) -> None:
    with FakeBinance(tick_interval=0.2, max_streams=3) as fake:
        pool = make_pool(fake, max_streams_per_connection=3)
        symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT", "XRPUSDT", "DOTUSDT"]
        pool.start()
        for symbol in symbols:
            pool.want(ticker(symbol))
        wait_for(lambda: fake.subscribed_streams() == {s.lower() + "@ticker" for s in symbols}, timeout=10)
        opened = fake.open_connections()
        assert len(opened) == 3 and all(len(c.streams) <= 3 for c in opened)
        assert all(c.close_code is None for c in fake.connections()), "never over Binance's stream limit"
        wait_for(lambda: all(recorder.count(s) for s in symbols))
        pool.stop()


def test_released_symbol_is_unsubscribed_after_the_grace_period(fake_binance, make_pool) -> None:
    pool = make_pool(fake_binance, grace=0.5)
    pool.start()
    pool.want(ticker("XRPUSDT"))
    wait_for(lambda: "xrpusdt@ticker" in fake_binance.subscribed_streams())
    pool.release(ticker("XRPUSDT"))
    pool.want(ticker("XRPUSDT"))  # came back before the grace period ended
    pool.release(ticker("XRPUSDT"))
    wait_for(lambda: "xrpusdt@ticker" not in fake_binance.subscribed_streams(), timeout=5)
    methods = [m["method"] for _, m in fake_binance.control_messages() if isinstance(m, dict)]
    assert methods == ["SUBSCRIBE", "UNSUBSCRIBE"]


def test_silent_connection_is_detected_and_replaced(fake_binance, make_pool, recorder) -> None:
    pool = make_pool(fake_binance, stale_timeout=1.0)
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    wait_for(lambda: recorder.count("BTCUSDT") >= 1)
    fake_binance.set_silent(True)
    wait_for(lambda: recorder.reasons("stale"), timeout=5, message="watchdog did not notice the silence")
    wait_for(lambda: len(fake_binance.connections()) >= 2, timeout=5)
    fake_binance.set_silent(False)
    before = recorder.count("BTCUSDT")
    wait_for(lambda: recorder.count("BTCUSDT") > before, timeout=5)
    assert "stale" in recorder.reasons("reconnect")


@pytest.mark.parametrize("code, reason", [(1008, "Too many requests"), (1001, "going away"), (1011, "oops")])
def test_server_close_is_healed_with_every_stream(fake_binance, make_pool, recorder, code: int, reason: str) -> None:
    pool = make_pool(fake_binance)
    pool.pin(tickers("BTCUSDT", "ETHUSDT"))
    pool.start()
    pool.want(ticker("XRPUSDT"))
    wanted = {"btcusdt@ticker", "ethusdt@ticker", "xrpusdt@ticker"}
    wait_for(lambda: fake_binance.subscribed_streams() == wanted)
    assert fake_binance.close_all(code, reason) == 1
    wait_for(lambda: len(fake_binance.open_connections()) == 1 and fake_binance.subscribed_streams() == wanted,
             timeout=5)
    assert "closed" in recorder.reasons("reconnect")
    before = recorder.count("XRPUSDT")
    wait_for(lambda: recorder.count("XRPUSDT") > before)


def test_server_pings_are_answered(make_pool, recorder) -> None:
    with FakeBinance(tick_interval=0.2, ping_interval=0.2, pong_timeout=0.6) as fake:
        pool = make_pool(fake)
        pool.pin(tickers("BTCUSDT"))
        pool.start()
        wait_for(lambda: recorder.count("BTCUSDT") >= 10, timeout=10)  # > 3 pong deadlines
        assert len(fake.connections()) == 1 and fake.open_connections(), "never closed for a missing pong"
        pool.stop()


def test_stop_ends_every_task_and_connection(fake_binance, make_pool, tasks) -> None:
    pool = make_pool(fake_binance)
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    wait_for(lambda: fake_binance.open_connections())
    pool.stop()
    assert not tasks.alive()
    wait_for(lambda: not fake_binance.open_connections())


def test_reconnect_waits_the_reconnect_delay(fake_binance, make_pool, recorder) -> None:
    pool = make_pool(fake_binance, reconnect_delay=1.0)
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    wait_for(lambda: recorder.count("BTCUSDT") >= 1)
    fake_binance.close_all(1001, "going away")
    wait_for(lambda: len(fake_binance.connections()) == 2, timeout=5)
    first, second = fake_binance.connections()
    assert first.closed_at is not None
    assert 0.9 <= second.opened_at - first.closed_at < 3.0, "first retry after RECONNECT_DELAY, not at once"


def test_pings_alone_do_not_hide_a_silent_connection(make_pool, recorder) -> None:
    with FakeBinance(tick_interval=0.2, ping_interval=0.2) as fake:
        pool = make_pool(fake, stale_timeout=1.0)
        pool.pin(tickers("BTCUSDT"))
        pool.start()
        wait_for(lambda: recorder.count("BTCUSDT") >= 1)
        fake.set_silent(True)  # pings keep coming every 0.2 s, under the 0.5 s receive poll
        wait_for(lambda: recorder.reasons("stale"), timeout=5, message="silence hidden by pings")
        pool.stop()


def test_a_dead_peer_is_found_by_our_own_pings(fake_binance, tasks, recorder) -> None:
    with FreezableProxy(fake_binance.port) as proxy:
        pool = UpstreamPool(BINANCE_EXCHANGE, proxy.ws_url, tasks, recorder, max_streams_per_connection=10,
                            messages_per_second=4.0, grace=0.2, max_age=3600.0,
                            timing=Timing(reconnect_delay=0.2, stale_timeout=60.0, ping_interval=0.3,
                                          pong_timeout=0.7))
        pool.pin(tickers("BTCUSDT"))
        pool.start()
        try:
            wait_for(lambda: recorder.count("BTCUSDT") >= 2)
            connections_before = len(fake_binance.connections())
            proxy.freeze()  # no FIN, no data, no pong: only our pings can tell
            wait_for(lambda: "dead_peer" in recorder.reasons("reconnect"), timeout=5)
            proxy.thaw()
            before = recorder.count("BTCUSDT")
            wait_for(lambda: recorder.count("BTCUSDT") > before, timeout=5)
            assert len(fake_binance.connections()) > connections_before
        finally:
            pool.stop()


def test_connection_is_rotated_before_its_age_limit_without_a_gap(fake_binance, make_pool, recorder) -> None:
    pool = make_pool(fake_binance, max_age=1.5)
    pool.pin(tickers("BTCUSDT", "ETHUSDT"))
    pool.start()
    wait_for(lambda: len([c for c in fake_binance.connections() if c.close_code == 1000]) >= 2, timeout=10,
             message="two rotations")
    assert "rotated" in [name for _, name, _ in recorder.events]
    assert not recorder.reasons("reconnect"), "rotation is not a reconnect"
    opened = fake_binance.connections()
    for old, new in zip(opened, opened[1:]):
        assert new.opened_at < old.closed_at, "the successor opened before the old one closed"
        assert new.streams == {"btcusdt@ticker", "ethusdt@ticker"}
    assert len(fake_binance.open_connections()) in (1, 2)
    handovers = [c.closed_at * 1000 for c in opened if c.close_code == 1000]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        wait_for(lambda s=symbol: recorder.newer_only(s)[-1] > handovers[1], message="ticks after the handovers")
        passed = recorder.newer_only(symbol)
        sent = [at for at in fake_binance.ticker_event_times(symbol) if passed[0] <= at <= passed[-1]]
        assert passed == sent, f"{symbol}: missing {sorted(set(sent) - set(passed))[:5]} around the handovers"
        assert passed[0] < handovers[0] and handovers[1] < passed[-1], "both handovers were compared"


def test_reconnects_stay_within_the_connection_budget(fake_binance, tasks, recorder, monkeypatch) -> None:
    monkeypatch.setattr(pool_module, "CONNECTIONS_PER_WINDOW", 3)
    pool = UpstreamPool(BINANCE_EXCHANGE, fake_binance.ws_url, tasks, recorder, max_streams_per_connection=10,
                        messages_per_second=4.0, grace=0.2, max_age=3600.0, timing=Timing(reconnect_delay=0.05))
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    try:
        for _attempt in range(5):
            wait_for(lambda: fake_binance.open_connections() or "connection_budget" in
                     [name for _, name, _ in recorder.events], timeout=5)
            fake_binance.drop_all()
        wait_for(lambda: "connection_budget" in [name for _, name, _ in recorder.events], timeout=5)
        assert len(fake_binance.connections()) == 3
    finally:
        pool.stop()


def test_flapping_stays_under_the_exchange_connection_limit(make_pool, recorder, monkeypatch) -> None:
    assert pool_module.CONNECTION_WINDOW == fake_protocol.CONNECTION_WINDOW
    assert pool_module.CONNECTIONS_PER_WINDOW < fake_protocol.CONNECTIONS_PER_WINDOW, "a margin below Binance's"
    limit, budget, window = 6, 5, 2.0  # 300 and 250 per 300 s, scaled down
    monkeypatch.setattr(pool_module, "CONNECTIONS_PER_WINDOW", budget)
    monkeypatch.setattr(pool_module, "CONNECTION_WINDOW", window)
    with FakeBinance(tick_interval=0.2, max_connections_per_window=limit, connection_window=window) as fake:
        pool = make_pool(fake, reconnect_delay=0.05, max_reconnect_delay=0.1)
        pool.pin(tickers("BTCUSDT"))
        pool.start()
        for _ in range(3 * budget + 1):  # every connection dropped as soon as it opens, for three windows
            wait_for(fake.open_connections, timeout=2 * window, message="the next connection")
            fake.drop_all()
        assert "connection_budget" in [name for _, name, _ in recorder.events], "the budget held attempts back"
        assert fake.rate_limited_attempts() == [], "never refused with 429 for too many connection attempts"
        # the budget counts when it lets an attempt go, the exchange when the handshake arrives: a few ms apart
        assert budget <= most_in_any_window(fake.connection_attempts(), window) <= limit, "up to the budget"
        before = recorder.count("BTCUSDT")
        wait_for(lambda: recorder.count("BTCUSDT") > before, timeout=2 * window, message="prices after the flapping")
        pool.stop()


def test_refused_reconnects_back_off_with_jitter_up_to_the_cap(fake_binance, make_pool, recorder) -> None:
    pool = make_pool(fake_binance, reconnect_delay=0.2, max_reconnect_delay=1.0)
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    wait_for(lambda: recorder.count("BTCUSDT") >= 1)
    fake_binance.refuse_connections(4.0)
    fake_binance.drop_all()
    wait_for(lambda: fake_binance.open_connections(), timeout=10, message="reconnected after the refusals")
    attempts = fake_binance.connection_attempts()[1:]  # after the first, accepted connection
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    steady = STEADY_DELAYS - 1  # the first delay is the one after the drop
    assert len(fake_binance.refused_attempts()) <= 4.0 / 0.2, "no tight loop"
    assert all(0.15 <= gap <= 0.2 * (1 + RETRY_JITTER) + 0.1 for gap in gaps[:steady]), gaps
    assert all(0.15 <= gap <= 1.0 + 0.3 for gap in gaps[steady:]), gaps
    assert max(gaps[steady:]) > 0.4, f"the delay grew: {gaps}"
    assert recorder.reasons("reconnect").count("connect_failed") == len(fake_binance.refused_attempts())


def test_a_thousand_streams_are_restored_in_small_requests_at_the_paced_rate(fake_binance, make_pool, recorder) -> None:
    rate = 4  # CONTROL_MESSAGES_PER_SECOND's default
    symbols = [f"SYM{i:04d}USDT" for i in range(1000)]  # well-formed: acknowledged, silent
    pool = make_pool(fake_binance, stale_timeout=600.0, messages_per_second=float(rate))
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    for symbol in symbols:
        pool.want(ticker(symbol))
    wanted = {s.lower() + "@ticker" for s in symbols} | {"btcusdt@ticker"}
    wait_for(lambda: fake_binance.subscribed_streams() == wanted, timeout=30)
    fake_binance.drop_all()
    wait_for(lambda: len(fake_binance.open_connections()) == 1 and fake_binance.subscribed_streams() == wanted,
             timeout=30, message="all 1001 streams restored after the reconnect")
    first, second = fake_binance.connections()
    assert first.close_code == 1006 and second.close_code is None, "never closed 1008 for too many requests"
    assert len(second.query.removeprefix("streams=").split("/")) == 100, "the URL carries 100 streams"
    requests = [(at, m) for conn, at, m in fake_binance.timed_control_messages() if conn == second.id]
    assert all(m["method"] == "SUBSCRIBE" and len(m["params"]) <= 50 for _, m in requests)
    assert sum(len(m["params"]) for _, m in requests) == len(wanted) - 100, "the rest after the URL's 100"
    times = [at for at, _ in requests]
    spacing = [round(b - a, 3) for a, b in zip(times, times[1:])]
    # The fake stamps a frame when its event loop reads it: usually a few ms after it was sent, but a loaded
    # machine can hold one back for a second and hand it over together with the next (unit tests check the
    # spacing as sent: tests/unit/test_control.py). At the exchange, the pace shows as the requests' rate over
    # the whole restore, and as the exchange's own limit, which jitter must never push them over.
    assert times[-1] - times[0] >= (len(times) - 1) / rate - 0.05, f"faster than {rate} per second: {spacing}"
    most = most_in_any_window(times, 1.0)
    assert most + 1 <= INCOMING_PER_SECOND, f"{most} requests within one second (and a ping may come): {spacing}"


def test_our_pings_are_answered_on_plain_threads(fake_binance, make_pool, recorder) -> None:
    """The pong can be read before the thread that sent the ping returns from sending it (the recorder's
    command line runs the pools on plain threads): it still counts."""
    pool = make_pool(fake_binance, ping_interval=0.3, pong_timeout=0.4)
    pool.pin(tickers("BTCUSDT"))
    pool.start()
    wait_for(lambda: recorder.count("BTCUSDT") >= 15, timeout=10)  # about ten pings
    assert not recorder.reasons("reconnect"), recorder.reasons("reconnect")
    assert len(fake_binance.connections()) == 1


def test_a_tap_sees_every_text_frame_of_each_route_as_received(fake_binance, make_pool, recorder) -> None:
    frames: list[tuple[str, str, bytes, float]] = []
    market = make_pool(fake_binance, tap=lambda *frame: frames.append(frame))
    public = make_pool(fake_binance, route=PUBLIC, tap=lambda *frame: frames.append(frame))
    market.pin(tickers("BTCUSDT"))
    public.want("btcusdt@bookTicker")
    market.start()
    public.start()
    wait_for(lambda: recorder.kinds.get("BTCUSDT") == {"ticker", "book"} and len(frames) >= 10)
    fake_binance.inject('{"result":null,"id":99}')
    fake_binance.inject(b"\x00binary", binary=True)
    wait_for(lambda: any(data == b'{"result":null,"id":99}' for _, _, data, _ in frames))
    market.stop()
    public.stop()
    routes = {(exchange, route) for exchange, route, _, _ in frames}
    assert routes == {("binance", "/market"), ("binance", "/public")}, "each frame names its exchange and route"
    assert all(b"binary" not in data for _, _, data, _ in frames), "text frames only"
    for _, route, data, received_ms in frames:
        message = parse_message(data)
        if isinstance(message, StreamBatch):
            kind = message.updates[0].kind.value
            assert (route, kind) in {("/market", "ticker"), ("/public", "book")}
            assert abs(received_ms - message.updates[0].event_time) < 1000
    assert sum(isinstance(parse_message(data), StreamBatch) for _, _, data, _ in frames) == recorder.count("BTCUSDT")
