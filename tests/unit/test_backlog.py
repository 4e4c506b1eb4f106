"""streaming.gateway.fastpath.backlog: conflation keeps the newest ticker and book ticker per symbol and everything
else (trades included), in order; the guard cuts off a client that stays behind for the timeout, and only such a
client, and a client that cannot keep up with its trades at once, with an error that says so."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from queue import Queue
from typing import Any

import streaming.gateway.fastpath.backlog as backlog_module
from metrics.collectors import ServiceMetrics
from streaming.gateway.fastpath.backlog import (
    CHECK_INTERVAL,
    ERROR_GRACE,
    SLOW_CONSUMER,
    BacklogGuard,
    conflate,
    conflation_key,
    is_trade,
)


@dataclass
class Pkt:
    data: object


def update(symbol: str, n: int, event: str = "price_update") -> Pkt:
    return Pkt(f'2["{event}",{{"symbol":"{symbol}","price":{n}}}]')


def trade(symbol: str, n: int) -> Pkt:
    return Pkt(f'2["trade",{{"symbol":"{symbol}","exchange":"binance","id":{n}}}]')


def test_conflation_keys_are_the_conflating_kinds_updates_by_symbol() -> None:
    assert conflation_key(update("BTCUSDT", 1)) == ("price_update", "BTCUSDT")
    assert conflation_key(update("BTCUSDT", 1, "book_ticker")) == ("book_ticker", "BTCUSDT")
    assert conflation_key(trade("BTCUSDT", 1)) is None and is_trade(trade("BTCUSDT", 1))
    assert not is_trade(update("BTCUSDT", 1)) and not is_trade(Pkt('2["error",{"code":"X"}]'))
    assert conflation_key(Pkt('2["stream_status",{"symbol":"BTCUSDT"}]')) is None
    assert conflation_key(Pkt(b"binary")) is None and conflation_key(None) is None and not is_trade(None)


def test_trades_are_never_conflated_and_each_kind_keeps_its_own_newest() -> None:
    items = [update("BTCUSDT", 1), trade("BTCUSDT", 7), update("BTCUSDT", 1, "book_ticker"), trade("BTCUSDT", 8),
             update("BTCUSDT", 2), update("BTCUSDT", 2, "book_ticker")]
    assert conflate(items) == [trade("BTCUSDT", 7), trade("BTCUSDT", 8), update("BTCUSDT", 2),
                               update("BTCUSDT", 2, "book_ticker")]


def test_conflation_keeps_the_newest_per_symbol_and_all_else_in_order() -> None:
    status = Pkt('2["stream_status",{"symbol":"BTCUSDT","state":"live"}]')
    items = [update("BTCUSDT", 1), update("ETHUSDT", 1), status, update("BTCUSDT", 2), None, update("BTCUSDT", 3)]
    kept = conflate(items)
    assert kept == [update("ETHUSDT", 1), status, None, update("BTCUSDT", 3)]


def test_nothing_to_conflate() -> None:
    items = [update("A", 1), update("B", 1)]
    assert conflate(items) == items and conflate([]) == []


@dataclass
class FakeEioSocket:
    """What the guard uses of a python-engineio socket: its send queue, ``closed`` and ``close``."""

    queue: Queue = field(default_factory=Queue)
    closed: bool = False

    def close(self, wait: bool = True, abort: bool = False) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


LIMIT, TIMEOUT = 10, 3.0


TRADE_LIMIT = 15


def guard(sock: FakeEioSocket) -> tuple[BacklogGuard, Clock, ServiceMetrics]:
    clock, metrics = Clock(), ServiceMetrics()
    eio: Any = type("Eio", (), {"sockets": {"sid": sock}})()
    backlog = BacklogGuard(eio, lambda _sid: {}, LIMIT, TIMEOUT, metrics, tasks=None,  # type: ignore[arg-type]
                           clock=clock, trade_limit=TRADE_LIMIT)
    return backlog, clock, metrics


def arrive(sock: FakeEioSocket, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        sock.queue.put(update(("BTCUSDT", "ETHUSDT")[n % 2], n))


def value(metrics: ServiceMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(f"websocket_streaming_{name}_total") or 0.0


def test_a_client_that_never_reads_is_cut_off_at_the_timeout_not_before() -> None:
    """Conflation leaves it 2 packets, under the limit until the next check: it is still behind (it read
    nothing), so the timeout runs from its first conflation."""
    sock = FakeEioSocket()
    backlog, clock, metrics = guard(sock)
    arrive(sock, LIMIT + 1)
    backlog.check()
    first_conflation = clock.now
    assert value(metrics, "slow_client_conflations") == 1 and sock.queue.qsize() == 2
    n = LIMIT + 1
    while clock.now - first_conflation < TIMEOUT - CHECK_INTERVAL / 2:
        clock.now += CHECK_INTERVAL
        arrive(sock, 6, n)  # 8 queued at the next check: not over the limit, but not read either
        n += 6
        backlog.check()
        if clock.now - first_conflation < TIMEOUT:
            assert not sock.closed, f"cut off {clock.now - first_conflation:.1f}s after falling behind"
    assert sock.closed and value(metrics, "slow_client_disconnects") == 1
    assert clock.now - first_conflation == TIMEOUT


def test_a_client_that_catches_up_is_not_cut_off_and_its_clock_starts_again() -> None:
    sock = FakeEioSocket()
    backlog, clock, metrics = guard(sock)
    arrive(sock, LIMIT + 1)
    backlog.check()  # behind from now
    for _ in range(int(TIMEOUT / CHECK_INTERVAL) * 2):
        clock.now += CHECK_INTERVAL
        sock.queue.get_nowait()  # it reads one more than arrives
        arrive(sock, 1)
        if sock.queue.qsize() > 1:
            sock.queue.get_nowait()
        backlog.check()
    assert not sock.closed and value(metrics, "slow_client_disconnects") == 0
    arrive(sock, LIMIT + 1)  # behind again: a new timeout
    backlog.check()
    fell_behind = clock.now
    for _ in range(int(TIMEOUT / CHECK_INTERVAL) * 2):
        clock.now += CHECK_INTERVAL
        arrive(sock, 1)
        backlog.check()
        if sock.closed:
            break
    assert sock.closed and clock.now - fell_behind == TIMEOUT


def queued(sock: FakeEioSocket) -> list[Any]:
    return [sock.queue.get_nowait() for _ in range(sock.queue.qsize())]


def test_a_client_behind_on_its_trades_keeps_them_all_until_the_trade_limit() -> None:
    sock = FakeEioSocket()
    backlog, clock, metrics = guard(sock)
    for n in range(TRADE_LIMIT - 2):
        sock.queue.put(trade("BTCUSDT", n))
    arrive(sock, 4)
    backlog.check()
    kept = queued(sock)
    assert not sock.closed, "exactly at the trade limit after conflation"
    assert [p for p in kept if is_trade(p)] == [trade("BTCUSDT", n) for n in range(TRADE_LIMIT - 2)]
    assert len(kept) == TRADE_LIMIT  # the trades and the newest price of each of the two symbols


def test_a_client_that_cannot_keep_up_with_its_trades_is_told_and_cut_off_at_once() -> None:
    sock = FakeEioSocket()
    backlog, clock, metrics = guard(sock)
    for n in range(TRADE_LIMIT + 1):
        sock.queue.put(trade("BTCUSDT", n))
    backlog.check()
    assert sock.closed and value(metrics, "slow_client_disconnects") == 1
    (error,) = queued(sock)  # the backlog is replaced by the error (FakeEioSocket.close queues nothing)
    assert error.data.startswith('2["error",')
    payload = json.loads(error.data[1:])[1]
    assert payload["code"] == SLOW_CONSUMER and payload["missed"] == TRADE_LIMIT + 1
    assert "cannot keep up with its trades" in payload["message"]


def test_a_client_that_does_not_even_read_its_error_is_shut_down_after_the_grace(monkeypatch) -> None:
    sock = FakeEioSocket()
    backlog, clock, metrics = guard(sock)
    aborted: list[object] = []
    monkeypatch.setattr(backlog_module, "abort_connection", lambda s, environ: aborted.append(s))
    for n in range(TRADE_LIMIT + 1):
        sock.queue.put(trade("BTCUSDT", n))
    backlog.check()
    clock.now += ERROR_GRACE - CHECK_INTERVAL
    backlog.check()
    assert aborted == []
    clock.now += CHECK_INTERVAL
    backlog.check()
    assert aborted == [sock]


def test_a_client_behind_with_trades_for_the_timeout_is_told_too() -> None:
    """Under the trade limit but behind for SLOW_CLIENT_TIMEOUT: its trades would be dropped, so it gets the error."""
    sock = FakeEioSocket()
    backlog, clock, metrics = guard(sock)
    for n in range(LIMIT + 1):
        sock.queue.put(trade("BTCUSDT", n))
    backlog.check()  # behind from now: 11 trades, under the trade limit
    assert not sock.closed
    clock.now += TIMEOUT
    backlog.check()
    assert sock.closed and value(metrics, "slow_client_disconnects") == 1
    (error,) = queued(sock)
    assert json.loads(error.data[1:])[1]["code"] == SLOW_CONSUMER
