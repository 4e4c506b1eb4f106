"""streaming.core.history: offsets count every update of a channel from 1; a returning client gets exactly what
it missed while the history holds it, and is told plainly when it cannot (another epoch, forgotten, too many)."""
from __future__ import annotations

import itertools

import pytest

from streaming.core.history import ChannelHistory, History, Position, new_epoch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def history(max_items: int = 5, max_age: float = 60.0) -> tuple[ChannelHistory[str], Clock]:
    clock = Clock()
    return ChannelHistory("e1", max_items, max_age, clock), clock


def test_offsets_count_every_update_from_one() -> None:
    channel, _ = history()
    assert channel.position == Position(0, "e1")
    assert [channel.append(f"u{n}") for n in range(1, 4)] == [Position(n, "e1") for n in range(1, 4)]


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
    store: History[str, str] = History(10, 60.0, Clock(), epochs=lambda: next(epochs))
    assert store.append("trade:BTCUSDT", "a") == Position(1, "e1")
    assert store.append("book:BTCUSDT", "b") == Position(1, "e2")
    assert store.append("trade:BTCUSDT", "c") == Position(2, "e1")
    assert store.restart("trade:BTCUSDT") == Position(0, "e3")
    assert not store.channel("trade:BTCUSDT").since(Position(2, "e1"), limit=10).recovered
    assert store.append("trade:BTCUSDT", "d") == Position(1, "e3")


def test_epochs_are_short_and_differ() -> None:
    made = {new_epoch() for _ in range(100)}
    assert len(made) == 100 and all(len(epoch) == 8 for epoch in made)


def test_a_history_must_keep_something() -> None:
    with pytest.raises(ValueError):
        ChannelHistory("e", 0, 1.0, Clock())
