"""streaming.core.ranges: GET /history's query and the replay event's fields; times in ms or ISO 8601."""
from __future__ import annotations

import math

import pytest

from streaming.core.channels import Kind
from streaming.core.errors import InvalidRequestError
from streaming.core.ranges import parse_history_query, parse_instant, parse_speed, parse_time_range


def test_times_are_epoch_milliseconds_or_iso_8601() -> None:
    assert parse_instant("1764770000000", "from") == 1764770000.0
    assert parse_instant(1764770000500, "from") == 1764770000.5
    assert parse_instant("2026-12-03T14:00:00Z", "from") == parse_instant("2026-12-03T14:00:00+00:00", "from")
    assert parse_instant("2026-12-03T14:00:00", "to") == parse_instant("2026-12-03T14:00:00Z", "to"), "UTC"
    for bad in ("yesterday", "", "-5", True, None, [1], math.nan, -1):
        with pytest.raises(InvalidRequestError, match="epoch milliseconds"):
            parse_instant(bad, "from")


def test_a_range_runs_forwards_and_defaults_to_everything() -> None:
    assert parse_time_range(None, None) == (0.0, math.inf)
    assert parse_time_range("1000", "1000") == (1.0, 1.0)
    with pytest.raises(InvalidRequestError, match="is after 'to'"):
        parse_time_range("2000", "1000")


def test_history_query_defaults_and_bounds() -> None:
    query = parse_history_query({})
    assert (query.kind, query.limit, query.after, query.epoch) == (Kind.TICKER, 100, 0, None)
    query = parse_history_query({"stream": "trade", "limit": "1000", "after": "41", "epoch": "9f3a61c2"})
    assert (query.kind, query.limit, query.after, query.epoch) == (Kind.TRADE, 1000, 41, "9f3a61c2")
    for args, message in (({"limit": "0"}, "'limit'"), ({"limit": "1001"}, "'limit'"), ({"limit": "ten"}, "'limit'"),
                          ({"after": "-1"}, "'after'"), ({"after": "9" * 17}, "'after'"), ({"stream": "kline"},
                          "'stream'"), ({"epoch": "a b"}, "'epoch'")):
        with pytest.raises(InvalidRequestError, match=message):
            parse_history_query(args)


def test_speed() -> None:
    assert parse_speed(None) == 1.0 and parse_speed(0) == 0.0 and parse_speed(10) == 10.0
    for bad in (-1, 1001, "fast", True, math.inf):
        with pytest.raises(InvalidRequestError, match="'speed'"):
            parse_speed(bad)
