"""streaming.upstream.control: per-connection SUBSCRIBE/UNSUBSCRIBE planning, id matching and pacing."""
from __future__ import annotations

from streaming.upstream.control import ControlChannel, PendingRequest
from tests.helpers import most_in_any_window
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
    for i in range(1000):
        channel.want(f"s{i:04d}@ticker")
    sent: list[tuple[float, PendingRequest]] = []
    for _ in range(1000):  # ten simulated seconds in 10 ms steps
        request = channel.next_request()
        if request:
            sent.append((clock.now, request))
            channel.on_reply(request.id)
        clock.now = round(clock.now + 0.01, 2)
    times = [at for at, _ in sent]
    assert most_in_any_window(times, 1.0) == 4, "4 requests in any second, never 5"
    assert all(len(r.streams) <= 50 for _, r in sent)
    assert sum(len(r.streams) for _, r in sent) == 1000 and channel.fully_active()
    assert times[-1] - times[0] <= (len(times) - 1) / 4.0 + 0.01, "and no slower than the pace allows"


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


def test_a_refused_batch_is_asked_again_one_stream_at_a_time_so_only_the_bad_stream_is_refused() -> None:
    channel, clock = make()
    channel.connected([])
    for stream in ("a@ticker", "bad@ticker", "c@ticker"):
        channel.want(stream)
    batch = channel.next_request()
    assert batch is not None and len(batch.streams) == 3
    channel.on_error(batch.id, "Invalid request: invalid stream")
    singles = []
    for _ in range(3):
        clock.now += 1
        request = channel.next_request()
        assert request is not None and len(request.streams) == 1
        singles.append(request)
        if request.streams == ("bad@ticker",):
            channel.on_error(request.id, "Invalid request: invalid stream")
        else:
            channel.on_reply(request.id)
    assert sorted(stream for request in singles for stream in request.streams) == ["a@ticker", "bad@ticker",
                                                                                     "c@ticker"]
    clock.now += 1
    assert channel.next_request() is None
    assert channel.active == {"a@ticker", "c@ticker"} and channel.rejected == {"bad@ticker"}
    assert channel.fully_active()


def test_a_refusal_that_names_its_streams_rejects_those_and_asks_again_for_the_rest() -> None:
    channel, clock = make()
    channel.connected([])
    for stream in ("tickers.BTCUSDT", "tickers.NOPE", "tickers.ETHUSDT", "tickers.SOLUSDT"):
        channel.want(stream)
    batch = channel.next_request()
    assert batch is not None
    # Bybit refuses the whole request, naming the unknown topic and the one subscribed already
    channel.on_error(batch.id, "error:handler not found,topic:tickers.NOPE;error:already subscribed,"
                     "topic:tickers.SOLUSDT", ("tickers.NOPE",), ("tickers.SOLUSDT",))
    assert channel.rejected == {"tickers.NOPE"} and channel.active == {"tickers.SOLUSDT"}
    clock.now += 1
    again = channel.next_request()
    assert again is not None and again.streams == ("tickers.BTCUSDT", "tickers.ETHUSDT")
    channel.on_reply(again.id)
    assert channel.fully_active() and channel.next_request() is None
