"""streaming.core.history: offsets count every update of a channel from 1; a returning client gets exactly what
it missed while the history holds it, and is told plainly when it cannot (another epoch, forgotten, too many)."""
from __future__ import annotations

import itertools

import pytest

from streaming.core.history import ChannelHistory, Entry, History, Position, Retention, new_epoch, select


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def history(max_items: int = 5, max_age: float = 60.0) -> tuple[ChannelHistory[str], Clock]:
    clock = Clock()
    return ChannelHistory("e1", Retention(max_items, max_age), clock), clock


def test_offsets_count_every_update_from_one() -> None:
    channel, _ = history()
    assert channel.position == Position(0, "e1")
    assert [channel.append(f"u{n}").offset for n in range(1, 4)] == [1, 2, 3]
    assert channel.position == Position(3, "e1")


def test_a_client_gets_exactly_what_it_missed_in_order() -> None:
    channel, _ = history()
    for n in range(1, 5):
        channel.append(f"u{n}")
    recovery = channel.since(Position(2, "e1"), limit=10)
    assert recovery.recovered and [(e.offset, e.item) for e in recovery.entries] == [(3, "u3"), (4, "u4")]
    up_to_date = channel.since(Position(4, "e1"), limit=10)
    assert up_to_date.recovered and up_to_date.entries == ()


@pytest.mark.parametrize("position, reason", [
    (Position(2, "other"), "epoch"), (Position(9, "e1"), "not in this history"), (Position(-1, "e1"), "not in"),
])
def test_a_position_of_another_history_is_refused_plainly(position: Position, reason: str) -> None:
    channel, _ = history()
    for n in range(4):
        channel.append(f"u{n}")
    recovery = channel.since(position, limit=10)
    assert not recovery.recovered and recovery.entries == () and reason in recovery.reason


def test_what_the_count_forgot_cannot_be_recovered() -> None:
    channel, _ = history(max_items=3)
    for n in range(1, 7):
        channel.append(f"u{n}")  # keeps 4, 5, 6
    assert [e.offset for e in channel.entries()] == [4, 5, 6]
    assert channel.since(Position(3, "e1"), limit=10).recovered
    lost = channel.since(Position(2, "e1"), limit=10)
    assert not lost.recovered and "no longer kept" in lost.reason


def test_what_the_age_forgot_cannot_be_recovered() -> None:
    channel, clock = history(max_age=10.0)
    channel.append("old")
    clock.now += 11
    channel.append("new")
    assert [e.item for e in channel.entries()] == ["new"]
    assert not channel.since(Position(0, "e1"), limit=10).recovered
    assert [e.item for e in channel.since(Position(1, "e1"), limit=10).entries] == ["new"]
    clock.now += 11
    assert not channel.since(Position(1, "e1"), limit=10).recovered, "everything expired"
    assert channel.since(Position(2, "e1"), limit=10).recovered, "nothing missed: nothing to send"


def test_a_recovery_past_the_limit_is_refused() -> None:
    channel, _ = history(max_items=100)
    for n in range(50):
        channel.append(f"u{n}")
    assert channel.since(Position(40, "e1"), limit=10).recovered
    too_many = channel.since(Position(39, "e1"), limit=10)
    assert not too_many.recovered and "more than one recovery sends (10)" in too_many.reason


def test_each_channel_has_its_own_offsets_and_a_restart_changes_the_epoch() -> None:
    epochs = (f"e{n}" for n in itertools.count(1))
    store: History[str, str] = History(lambda key: Retention(10, 60.0), Clock(), epochs=lambda: next(epochs))
    assert store.append("trade:BTCUSDT", "a").offset == 1
    assert store.append("book:BTCUSDT", "b").offset == 1
    assert store.append("trade:BTCUSDT", "c").offset == 2
    assert store.channel("trade:BTCUSDT").position == Position(2, "e1")
    assert store.channel("book:BTCUSDT").position == Position(1, "e2")
    assert store.restart("trade:BTCUSDT") == Position(0, "e3")
    assert not store.channel("trade:BTCUSDT").since(Position(2, "e1"), limit=10).recovered
    assert store.append("trade:BTCUSDT", "d").offset == 1


def test_epochs_are_short_and_differ() -> None:
    made = {new_epoch() for _ in range(100)}
    assert len(made) == 100 and all(len(epoch) == 8 for epoch in made)


def test_a_history_must_keep_something() -> None:
    with pytest.raises(ValueError):
        Retention(0, 1.0)
    with pytest.raises(ValueError):
        Retention(1, 0)


def test_entry_times_never_go_back() -> None:
    channel, clock = history()
    assert channel.append("a", at=clock.now - 1).at == clock.now - 1
    assert channel.append("b", at=clock.now - 5).at == clock.now - 1, "an earlier event time is clamped"
    assert channel.append("c").at == clock.now


def entries(*times: float) -> list[Entry[str]]:
    return [Entry(n, at, f"u{n}") for n, at in enumerate(times, start=1)]


def test_select_pages_through_a_time_range_after_an_offset() -> None:
    tape = entries(1, 2, 3, 4, 5, 6)
    chosen, more = select(tape, after=0, start=2, end=5, limit=2)
    assert [e.offset for e in chosen] == [2, 3] and more
    chosen, more = select(tape, after=3, start=2, end=5, limit=2)
    assert [e.offset for e in chosen] == [4, 5] and not more, "6 is past the end"
    assert select(tape, after=5, start=2, end=5, limit=2) == ([], False)
    chosen, more = select(tape, after=0, start=0, end=10, limit=6)
    assert len(chosen) == 6 and not more, "exactly the limit left: no next page"


def test_a_page_says_where_to_go_on() -> None:
    channel, clock = history(max_items=10)
    for n in range(5):
        channel.append(f"u{n}", at=clock.now - 5 + n)
    first = channel.page(after=0, start=0, end=clock.now, limit=3)
    assert first.epoch == "e1" and [e.offset for e in first.entries] == [1, 2, 3] and first.next == 3
    second = channel.page(after=first.next, start=0, end=clock.now, limit=3)
    assert [e.offset for e in second.entries] == [4, 5] and second.next is None


def test_an_adopted_history_goes_on_where_the_stored_one_ended() -> None:
    clock = Clock()
    store: History[str, str] = History(lambda key: Retention(3, 60.0), clock, epochs=lambda: "fresh")
    adopted = store.adopt("trade:BTCUSDT", "kept", 41, [Entry(40, clock.now, "u40"), Entry(41, clock.now, "u41")])
    assert adopted.position == Position(41, "kept") and adopted.oldest == 40
    assert store.append("trade:BTCUSDT", "u42").offset == 42
    assert [e.item for e in store.channel("trade:BTCUSDT").since(Position(40, "kept"), 10).entries] == ["u41", "u42"]
    stored_without_entries = store.adopt("book:BTCUSDT", "kept2", 7)
    assert stored_without_entries.position == Position(7, "kept2") and stored_without_entries.oldest == 8
    assert not stored_without_entries.since(Position(6, "kept2"), 10).recovered, "update 7 is not held"
    store.restart_all()
    assert store.get("trade:BTCUSDT") is None and store.channel("trade:BTCUSDT").position == Position(0, "fresh")
