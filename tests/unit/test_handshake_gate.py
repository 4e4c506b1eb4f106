"""HandshakeGate: at most N connections in their handshake; slots freed by the handshake's end, or by expiry."""
from __future__ import annotations

import threading

from streaming.runtime.guard import HandshakeGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_holds_until_a_handshake_is_done_and_done_counts_once_per_connection() -> None:
    gate = HandshakeGate(limit=2, expiry=10, clock=Clock())
    a, b, c = object(), object(), object()
    assert gate.enter(a, blocking=False) and gate.enter(b, blocking=False)
    assert gate.enter(a, blocking=False), "a connection that holds a slot keeps it"
    assert not gate.enter(c, blocking=False), "two handshakes in flight: the next request waits"
    gate.done(a)
    gate.done(a)  # the connect and the end of the request both say so: one slot
    assert gate.in_use() == 1
    gate.done(c)  # a connection that holds no slot frees none
    assert gate.in_use() == 1
    assert gate.enter(c, blocking=False)


def test_a_handshake_that_never_ends_frees_its_slot_after_the_expiry() -> None:
    clock = Clock()
    gate = HandshakeGate(limit=1, expiry=1.0, clock=clock)
    assert gate.enter(object())
    clock.now += 0.9
    assert not gate.enter(object(), blocking=False)
    clock.now += 0.2
    assert gate.enter(object(), blocking=False), "a client that never finishes cannot hold the others back"


def test_a_waiting_request_is_woken_by_done_from_another_thread() -> None:
    gate = HandshakeGate(limit=1, expiry=30)
    first, second = object(), object()
    assert gate.enter(first)
    entered = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.enter(second), entered.set()))
    waiter.start()
    assert not entered.wait(0.2)
    gate.done(first)  # e.g. its Socket.IO connect, handled in another green thread
    assert entered.wait(2)
    waiter.join(2)
