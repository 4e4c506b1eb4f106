"""The TCP intake's pure bookkeeping: connections per address, and episodes of running out of descriptors."""
from __future__ import annotations

import errno

import pytest

from metrics.labels import AcceptError
from streaming.core.intake import EXHAUSTION_ERRORS, AddressTable, Exhaustion
from tests.unit.test_pacing import FakeClock


def test_an_address_holds_at_most_its_limit_and_gets_room_back_as_connections_close() -> None:
    table = AddressTable(2)
    assert table.admit("127.0.0.2") and table.admit("127.0.0.2")
    assert not table.admit("127.0.0.2")  # refused, and not counted
    assert table.admit("127.0.0.1")  # other addresses are not affected
    assert (table.open_from("127.0.0.2"), table.total()) == (2, 3)
    table.release("127.0.0.2")
    assert table.admit("127.0.0.2")
    for _ in range(3):
        table.release("127.0.0.2")
    assert table.open_from("127.0.0.2") == 0  # released more often than admitted: never negative
    table.release("127.0.0.1")
    assert table.total() == 0


def test_a_table_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError):
        AddressTable(0)


def test_one_report_per_episode_of_running_out_even_when_accepts_succeed_in_between() -> None:
    clock = FakeClock()
    episodes = Exhaustion(pause=0.25, clock=clock, quiet=10.0)
    assert episodes.recovered() is None  # no episode yet
    first = episodes.failed()
    assert (first.pause, first.report) == (0.25, True)
    clock.now += 0.25
    assert not episodes.failed().report
    clock.now += 1.0
    assert episodes.recovered() == pytest.approx(1.25)  # reported once...
    assert episodes.recovered() is None  # ...per episode
    clock.now += 2.0
    assert not episodes.failed().report  # near the limit, failing again soon after is the same episode
    assert episodes.failures == 3
    clock.now += 10.5
    assert not episodes.active
    assert episodes.failed().report  # a quiet period ended the episode: a new one is reported
    assert episodes.failures == 1
    assert episodes.recovered() == pytest.approx(0.0)


def test_every_exhaustion_error_has_its_metric_label() -> None:
    assert {errno.errorcode[number] for number in EXHAUSTION_ERRORS} == set(AcceptError)
