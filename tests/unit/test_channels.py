"""streaming.core.channels: the kinds, their policies, and the `streams` of a request."""
from __future__ import annotations

import pytest

from streaming.core.channels import BINANCE, DEFAULT_KINDS, KINDS, Channel, Kind, parse_kinds
from streaming.core.errors import InvalidRequestError


def test_every_kind_is_declared_once_with_its_client_policy() -> None:
    assert set(KINDS) == set(Kind) and all(policy.kind is kind for kind, policy in KINDS.items())
    assert {kind: policy.event for kind, policy in KINDS.items()} == {
        Kind.TICKER: "price_update", Kind.TRADE: "trade", Kind.BOOK: "book_ticker"}
    # state is snapshotted and conflated; trades are events: no snapshot, never conflated
    assert [kind for kind, policy in KINDS.items() if policy.snapshot] == [Kind.TICKER, Kind.BOOK]
    assert [kind for kind, policy in KINDS.items() if policy.conflate] == [Kind.TICKER, Kind.BOOK]


def test_a_channel_names_itself_as_clients_do() -> None:
    channel = Channel(BINANCE, Kind.TRADE, "BTCUSDT")
    assert channel.key == "trade:BTCUSDT" and channel.policy.event == "trade"
    same = Channel("binance", Kind("trade"), "BTCUSDT")
    assert channel == same and hash(channel) == hash(same) and len({channel, same}) == 1
    assert channel != Channel(BINANCE, Kind.BOOK, "BTCUSDT")


def test_streams_default_to_the_ticker_and_keep_the_clients_order_without_repeats() -> None:
    assert parse_kinds(None) == DEFAULT_KINDS == (Kind.TICKER,)
    assert parse_kinds(["trade", "book", "trade", "ticker"]) == (Kind.TRADE, Kind.BOOK, Kind.TICKER)


@pytest.mark.parametrize("value", ["trade", ["foo"], [5], [], [None], ["TRADE"], {"trade": True}, ["ticker", 1],
                                   [["trade"]], 0, True, "", ["Kind.TRADE"]])
def test_anything_but_a_non_empty_list_of_kind_names_refuses_the_request(value: object) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_kinds(value)
    message = str(refused.value)
    assert "'streams'" in message and '"ticker", "trade", "book"' in message, message
    assert refused.value.code == "INVALID_REQUEST"


def test_a_long_bad_value_is_shown_shortened() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_kinds(["x" * 500])
    assert len(str(refused.value)) < 200
