"""cache.codec: stored tickers round-trip exactly; foreign values are refused."""
from __future__ import annotations

import pytest

from cache.codec import decode, encode, key_for
from streaming.core.errors import ProtocolError
from tests.unit.test_models import make_ticker


def test_round_trip_is_exact() -> None:
    ticker = make_ticker(price="0.00001234")
    assert decode(encode(ticker)) == ticker
    assert decode(encode(ticker).encode()) == ticker
    assert key_for("BTCUSDT") == "price:BTCUSDT"


@pytest.mark.parametrize("raw", ["", "garbage", "[]", '{"symbol":"BTCUSDT"}', '{"price": 1}'])
def test_foreign_values_are_refused(raw: str) -> None:
    with pytest.raises(ProtocolError):
        decode(raw)


def test_wrong_types_are_refused() -> None:
    text = encode(make_ticker()).replace('"event_time":1791283239234', '"event_time":"1"')
    with pytest.raises(ProtocolError):
        decode(text)
