"""streaming.gateway.fastpath.backlog: conflation keeps the newest price per symbol and everything else, in order; the
guard
cuts off a client that stays behind for the timeout, and only such a client."""
from __future__ import annotations

from dataclasses import dataclass, field
from queue import Queue
from typing import Any

from metrics.collectors import ServiceMetrics
from streaming.gateway.fastpath.backlog import CHECK_INTERVAL, BacklogGuard, conflate, price_symbol


@dataclass
class Pkt:
    data: object


def update(symbol: str, n: int) -> Pkt:
    return Pkt(f'2["price_update",{{"symbol":"{symbol}","price":{n}}}]')


def test_price_symbol_reads_only_price_updates() -> None:
    assert price_symbol(update("BTCUSDT", 1)) == "BTCUSDT"
    assert price_symbol(Pkt('2["stream_status",{"symbol":"BTCUSDT"}]')) is None
    assert price_symbol(Pkt(b"binary")) is None and price_symbol(None) is None


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


def guard(sock: FakeEioSocket) -> tuple[BacklogGuard, Clock, ServiceMetrics]:
    clock, metrics = Clock(), ServiceMetrics()
    eio: Any = type("Eio", (), {"sockets": {"sid": sock}})()
    return BacklogGuard(eio, lambda _sid: {}, LIMIT, TIMEOUT, metrics, tasks=None, clock=clock), clock, metrics  # type: ignore[arg-type]


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
