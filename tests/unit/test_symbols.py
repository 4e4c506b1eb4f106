"""streaming.core.symbols: normalising symbols and validating subscribe payloads."""
from __future__ import annotations

import pytest

from streaming.core.errors import InvalidRequestError, InvalidSymbolError
from streaming.core.symbols import normalise_symbol, parse_symbol_request


@pytest.mark.parametrize("raw, expected", [("BTCUSDT", "BTCUSDT"), ("btcusdt", "BTCUSDT"), (" ethUSDT ", "ETHUSDT"),
                                           ("1000PEPEUSDT", "1000PEPEUSDT"), ("BTCUSDT_260327", "BTCUSDT_260327")])
def test_normalise_accepts_binance_forms(raw: str, expected: str) -> None:
    assert normalise_symbol(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "B", "BTC-USDT", "BTC/USDT", "../etc/passwd", "BTC USDT", "x" * 33,
                                 "btc\x00usdt", "ＢＴＣUSDT", "_BTCUSDT", "BTCUSDT\n", "{{7*7}}", "' OR 1=1 --"])
def test_normalise_rejects_malformed(raw: str) -> None:
    if raw == "BTCUSDT\n":  # surrounding white space is trimmed, so this one is fine
        assert normalise_symbol(raw) == "BTCUSDT"
        return
    with pytest.raises(InvalidSymbolError):
        normalise_symbol(raw)


@pytest.mark.parametrize("raw", [None, 1, 1.5, True, [], {}, b"BTCUSDT"])
def test_normalise_rejects_non_strings(raw: object) -> None:
    with pytest.raises(InvalidSymbolError, match="must be a string"):
        normalise_symbol(raw)


def test_error_message_is_bounded_for_huge_input() -> None:
    with pytest.raises(InvalidSymbolError) as info:
        normalise_symbol("A" * 1_000_000)
    assert len(str(info.value)) < 200


def test_request_deduplicates_case_insensitively_and_keeps_order() -> None:
    parsed = parse_symbol_request({"symbols": ["ethusdt", "BTCUSDT", "ETHUSDT", "btcusdt"]})
    assert parsed.symbols == ("ETHUSDT", "BTCUSDT")
    assert parsed.rejected == ()


def test_request_keeps_good_symbols_and_reports_bad_items() -> None:
    parsed = parse_symbol_request({"symbols": ["BTCUSDT", 7, None, "bad symbol", {"a": 1}, "SOLUSDT"]})
    assert parsed.symbols == ("BTCUSDT", "SOLUSDT")
    assert [item for item, _ in parsed.rejected] == ["7", "None", "bad symbol", "{'a': 1}"]
    assert all(reason for _, reason in parsed.rejected)


@pytest.mark.parametrize("payload, fragment", [
    (None, "got null"), ("BTCUSDT", "got str"), (["BTCUSDT"], "got list"), ({}, "missing 'symbols'"),
    ({"symbols": "BTCUSDT"}, "must be a list"), ({"symbols": None}, "must be a list"), ({"symbols": []}, "empty"),
    ({"symbols": {"BTCUSDT": 1}}, "must be a list"),
])
def test_request_shape_errors_say_what_to_send(payload: object, fragment: str) -> None:
    with pytest.raises(InvalidRequestError, match=fragment):
        parse_symbol_request(payload)


def test_shown_items_are_short_and_printable() -> None:
    parsed = parse_symbol_request({"symbols": ["\x1b[31m" + "Z" * 500, list(range(10_000))]})
    for item, _ in parsed.rejected:
        assert len(item) <= 43 and item.isprintable()

