"""streaming.control: per-connection SUBSCRIBE/UNSUBSCRIBE planning, id matching and pacing."""
from __future__ import annotations

from streaming.control import ControlChannel
from tests.unit.test_pacing import FakeClock


def make(rate: float = 4.0, batch: int = 50) -> tuple[ControlChannel, FakeClock]:
    clock = FakeClock()
    return ControlChannel(clock, rate, max_batch=batch), clock


def test_subscribes_what_is_wanted_and_not_in_the_url() -> None:
    channel, _ = make()
    for stream in ("a@ticker", "b@ticker", "c@ticker"):
        channel.want(stream)
    channel.connected(["a@ticker"])
    request = channel.next_request()
    assert request is not None and request.method == "SUBSCRIBE" and request.streams == ("b@ticker", "c@ticker")
    assert channel.next_request() is None  # in flight: not asked twice
    assert channel.on_reply(request.id).ok
    assert channel.active == {"a@ticker", "b@ticker", "c@ticker"}


def test_ids_increase_and_unknown_replies_are_reported() -> None:
    channel, clock = make()
    channel.connected([])
    channel.want("a@ticker")
    first = channel.next_request()
    channel.want("b@ticker")
    clock.now += 1
    second = channel.next_request()
    assert first is not None and second is not None and second.id == first.id + 1
    assert channel.on_reply(999).request is None


def test_unsubscribes_what_is_no_longer_wanted() -> None:
    channel, clock = make()
    channel.want("a@ticker")
    channel.connected(["a@ticker"])
    channel.unwant("a@ticker")
    request = channel.next_request()
    assert request is not None and request.method == "UNSUBSCRIBE" and request.streams == ("a@ticker",)
    channel.on_reply(request.id)
    assert channel.active == set()


def test_batches_are_small_and_paced() -> None:
    channel, clock = make(rate=4.0, batch=50)
    channel.connected([])
    for i in range(230):
        channel.want(f"s{i:03d}@ticker")
    sent = []
    for _ in range(100):  # one simulated second in 10 ms steps
        request = channel.next_request()
        if request:
            sent.append(request)
        clock.now += 0.01
    assert 1 <= len(sent) <= 5
    assert all(len(r.streams) <= 50 for r in sent)
    clock.now += 10
    while (request := channel.next_request()) is not None or channel.backlog()[0]:
        if request:
            sent.append(request)
        clock.now += 0.25
    assert sum(len(r.streams) for r in sent) == 230


def test_refused_subscription_is_not_retried_in_a_loop_but_can_be_asked_again() -> None:
    channel, clock = make()
    channel.connected([])
    channel.want("bad@ticker")
    request = channel.next_request()
    assert request is not None
    outcome = channel.on_error(request.id, "Invalid request: invalid stream")
    assert not outcome.ok and outcome.request == request
    clock.now += 5
    assert channel.next_request() is None
    channel.unwant("bad@ticker")
    channel.want("bad@ticker")
    assert channel.next_request() is not None


def test_disconnect_forgets_active_and_in_flight() -> None:
    channel, clock = make()
    channel.want("a@ticker")
    channel.connected([])
    assert channel.next_request() is not None
    channel.disconnected()
    assert channel.active == set() and channel.pending_count() == 0
    channel.connected(["a@ticker"])
    assert channel.next_request() is None


def test_overdue_requests_are_reported() -> None:
    channel, clock = make()
    channel.connected([])
    channel.want("a@ticker")
    request = channel.next_request()
    assert channel.overdue(10) == []
    clock.now += 11
    assert channel.overdue(10) == [request]
