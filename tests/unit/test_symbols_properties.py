"""Property tests (Hypothesis) of the pure edges that take untrusted input.

streaming.core.symbols (client symbols and subscribe payloads), streaming.exchanges.binance.protocol.parse_message
(upstream frames) and
cache.codec (stored tickers). Pinned ``@example``s are inputs that once broke a property: they run every time.
"""
from __future__ import annotations

import json
import math
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cache.codec import decode, encode
from streaming.core.errors import InvalidRequestError, InvalidSymbolError, ProtocolError, TooManySymbolsError
from streaming.core.models import Ticker
from streaming.core.symbols import MAX_SYMBOL_LENGTH, SYMBOL_PATTERN, normalise_symbol, parse_symbol_request
from streaming.exchanges.binance.protocol import StreamBatch, parse_message

PROPERTIES = settings(max_examples=200, deadline=None, database=None,  # failures print their example
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_SHOWN = 40 + len("...")  # streaming.core.symbols.MAX_SHOWN_ITEM plus the ellipsis

# -- strategies -----------------------------------------------------------------------------------------------

# Every code point, surrogates and control characters included.
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=60)
# Ints past Python's 4300-digit str() limit: a JSON parser refuses them, a Python caller may still pass one.
huge_int = st.integers(min_value=4301, max_value=6000).map(lambda digits: 10**digits)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_int, st.floats(allow_nan=True, allow_infinity=True),
    any_text, st.binary(max_size=40),
)
json_like = st.recursive(
    scalar,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=25,
)
# Strings near the accepted form: Binance-like symbols in mixed case, with blanks, near the length limit.
ascii_symbolish = st.text(string.ascii_letters + string.digits + "_", min_size=0, max_size=MAX_SYMBOL_LENGTH + 2)
padded = st.tuples(st.sampled_from(["", " ", "\t", "\n", " \r\n"]), ascii_symbolish,
                   st.sampled_from(["", " ", "\t", "\n"])).map("".join)
# Letters whose case mapping crosses into ASCII: LATIN SMALL LONG S, DOTLESS I, CAPITAL SHARP S, KELVIN SIGN.
symbolish = st.one_of(padded, any_text, st.text(string.ascii_letters + "\u017f\u0131\u1e9e\u212a", max_size=12))
item = st.one_of(symbolish, json_like)
payload = st.one_of(
    json_like,
    st.fixed_dictionaries({"symbols": st.lists(item, max_size=12)}),
    st.fixed_dictionaries({"symbols": json_like}),
    st.dictionaries(any_text, json_like, max_size=3).map(lambda d: {**d, "symbols": list(d.values())}),
)


def _outcome(raw: object) -> str | type[Exception]:
    try:
        return normalise_symbol(raw)
    except InvalidSymbolError:
        return InvalidSymbolError


# -- streaming.core.symbols ----------------------------------------------------------------------------------------


@PROPERTIES
@given(raw=st.one_of(symbolish, json_like))
def test_normalise_accepts_only_the_canonical_pattern_and_raises_nothing_else(raw: object) -> None:
    try:
        symbol = normalise_symbol(raw)
    except InvalidSymbolError as exc:
        assert str(exc) and len(str(exc)) < 200
        return
    assert isinstance(raw, str)
    assert SYMBOL_PATTERN.fullmatch(symbol) and len(symbol) <= MAX_SYMBOL_LENGTH
    assert symbol == raw.strip().upper()


@PROPERTIES
@given(raw=symbolish)
def test_normalise_is_idempotent(raw: str) -> None:
    first = _outcome(raw)
    if isinstance(first, str):
        assert normalise_symbol(first) == first


@PROPERTIES
@given(raw=symbolish, flips=st.lists(st.booleans(), min_size=1))
def test_normalise_is_case_insensitive(raw: str, flips: list[bool]) -> None:
    """Changing the case of ASCII letters changes nothing (symbols are ASCII; see the next property)."""
    mixed = "".join(
        (ch.upper() if flips[i % len(flips)] else ch.lower()) if ch in string.ascii_letters else ch
        for i, ch in enumerate(raw)
    )
    assert _outcome(raw) == _outcome(mixed), f"{raw!r} -> {_outcome(raw)!r}, {mixed!r} -> {_outcome(mixed)!r}"


@PROPERTIES
@given(raw=symbolish)
@example(raw="\u017folusdt")  # LATIN SMALL LETTER LONG S: str.upper() makes it 'S', so this became SOLUSDT
@example(raw="\u0131cpusdt")  # LATIN SMALL LETTER DOTLESS I: 'I', ICPUSDT
def test_normalise_accepts_only_ascii(raw: str) -> None:
    """Symbols are ASCII letters and digits: a non-ASCII letter is refused like 'ＢＴＣUSDT', not mapped onto
    an ASCII one by Unicode case rules (which also made U+212A KELVIN SIGN refused in upper case and accepted
    in lower case)."""
    outcome = _outcome(raw)
    assert outcome is InvalidSymbolError or raw.strip().isascii(), f"{raw!r} accepted as {outcome!r}"


@PROPERTIES
@given(data=payload, max_symbols=st.one_of(st.none(), st.integers(min_value=1, max_value=20)))
@example(data={"symbols": [10**5000]}, max_symbols=None)  # reprlib.repr() of it raises ValueError
@example(data={"symbols": ["ok", [10**4400]]}, max_symbols=None)
def test_parse_symbol_request_raises_only_the_documented_errors(data: object, max_symbols: int | None) -> None:
    try:
        parsed = parse_symbol_request(data, max_symbols)
    except (InvalidRequestError, InvalidSymbolError) as exc:  # TooManySymbolsError is an InvalidRequestError
        assert str(exc)
        if isinstance(exc, TooManySymbolsError):
            assert isinstance(data, dict) and max_symbols is not None and len(data["symbols"]) > max_symbols
        return
    assert isinstance(data, dict) and isinstance(data["symbols"], list) and data["symbols"]
    assert max_symbols is None or len(data["symbols"]) <= max_symbols
    items = data["symbols"]
    accepted = [_outcome(i) for i in items if isinstance(_outcome(i), str)]
    assert list(parsed.symbols) == list(dict.fromkeys(accepted)), "deduplicated, first occurrence order"
    assert len(parsed.rejected) == len(items) - len(accepted)
    for symbol in parsed.symbols:
        assert SYMBOL_PATTERN.fullmatch(symbol) and len(symbol) <= MAX_SYMBOL_LENGTH
    for shown, reason in parsed.rejected:
        assert isinstance(shown, str) and len(shown) <= MAX_SHOWN and shown.isprintable(), repr(shown)
        assert isinstance(reason, str) and reason


@PROPERTIES
@given(symbols=st.lists(st.sampled_from(["BTCUSDT", "ethusdt", " ETHUSDT", "solusdt\n", "BTC-USDT", 7]),
                        min_size=1, max_size=15))
def test_parse_symbol_request_keeps_the_first_of_each_symbol_in_order(symbols: list[object]) -> None:
    parsed = parse_symbol_request({"symbols": symbols})
    expected: list[str] = []
    for value in symbols:
        if isinstance(value, str) and value.strip().upper() in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            if value.strip().upper() not in expected:
                expected.append(value.strip().upper())
    assert list(parsed.symbols) == expected
    assert len(parsed.rejected) == sum(1 for value in symbols if value in ("BTC-USDT", 7))


# -- streaming.exchanges.binance.protocol.parse_message ---------------------------------------------------------

decimal_text = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-10**9, max_value=10**9).map(str),
    st.sampled_from(["0", "86026.40", "-1.5", "1e3", "NaN", "Infinity", "", "abc", "1e400", "0x10"]),
    st.integers(), st.floats(), st.none(),
)
ticker_row = st.fixed_dictionaries(
    {
        "e": st.sampled_from(["24hrTicker", "24hrMiniTicker", "bookTicker", "", 24]),
        "E": st.one_of(st.integers(min_value=-5, max_value=2**63), st.text(max_size=5), st.none(), st.booleans()),
        "s": st.one_of(st.sampled_from(["BTCUSDT", "ethusdt", ""]), st.text(max_size=8), st.none()),
        **{key: decimal_text for key in "cvhlpPoq"},
    },
    optional={"st": st.one_of(st.sampled_from([1, 2, 0]), st.booleans(), st.floats(), st.text(max_size=3))},
)
row = st.one_of(ticker_row, json_like)
stream_frame = st.fixed_dictionaries(
    {"stream": st.one_of(st.sampled_from(["btcusdt@ticker", "!ticker@arr"]), any_text, st.integers()),
     "data": st.one_of(row, st.lists(row, max_size=6))},
)
# Nested arrays past the JSON decoder's recursion limit: garbage like any other.
deep = st.integers(min_value=1, max_value=6000).map(lambda depth: "[" * depth + "]" * depth)


def _frame_text(frame: Any) -> str:
    return json.dumps(frame, default=repr)  # bytes and other non-JSON leaves become strings


frame_text = st.one_of(
    any_text,
    st.binary(max_size=200),
    deep,
    json_like.filter(lambda v: not _has_huge_int(v)).map(_frame_text),
    stream_frame.filter(lambda v: not _has_huge_int(v)).map(_frame_text),
)


def _has_huge_int(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) >= 10**4300
    if isinstance(value, dict):
        return any(_has_huge_int(k) or _has_huge_int(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_huge_int(v) for v in value)
    return False


@PROPERTIES
@given(text=frame_text)
@example(text="[" * 5000 + "]" * 5000)  # RecursionError out of json.loads
@example(text=b"\xff\xfe\x00")
def test_parse_message_never_raises(text: str | bytes) -> None:
    parse_message(text)  # any exception fails the property
    if isinstance(text, str):
        parse_message(text.encode("utf-8", "surrogatepass"))


@PROPERTIES
@given(frame=stream_frame.filter(lambda v: not _has_huge_int(v)))
def test_tickers_come_only_from_usd_m_24hr_ticker_rows(frame: dict[str, Any]) -> None:
    message = parse_message(_frame_text(frame))
    if not isinstance(message, StreamBatch):
        return
    rows = json.loads(_frame_text(frame))["data"]
    rows = rows if isinstance(rows, list) else [rows]
    eligible = [r for r in rows if isinstance(r, dict) and r.get("e") == "24hrTicker" and r.get("st", 1) == 1]
    symbols = [t.symbol for t in message.updates]
    # Each ticker is one eligible row, in order; ineligible rows never yield a ticker.
    position = 0
    for ticker in message.updates:
        while position < len(eligible) and not _is_row_of(ticker, eligible[position]):
            position += 1
        assert position < len(eligible), f"ticker {ticker} from no 24hrTicker USD-M row: {rows}"
        position += 1
    assert message.skipped == len(rows) - len(message.updates), symbols


def _is_row_of(ticker: Ticker, row: dict[str, Any]) -> bool:
    return (isinstance(row.get("s"), str) and ticker.symbol == row["s"].upper() and ticker.price == row.get("c")
            and ticker.event_time == row.get("E") and ticker.quote_volume == row.get("q"))


@PROPERTIES
@given(frame=stream_frame.filter(lambda v: not _has_huge_int(v)))
@example(frame={"stream": "btcusdt@ticker", "data": {"e": "24hrTicker", "E": 10**17, "s": "BTCUSDT", "c": "1",
                                                      "v": "1", "h": "1", "l": "1", "p": "1", "P": "1", "o": "1",
                                                      "q": "1"}})  # OverflowError in to_wire (year > 9999)
@example(frame={"stream": "btcusdt@ticker", "data": {"e": "24hrTicker", "E": 1, "s": "BTCUSDT", "c": "1e400",
                                                      "v": "1", "h": "1", "l": "1", "p": "1", "P": "1", "o": "1",
                                                      "q": "1"}})  # float('1e400') is inf: not JSON
def test_every_parsed_ticker_has_a_json_wire_form(frame: dict[str, Any]) -> None:
    """A ticker the parser accepts must reach clients: to_wire() works and gives finite JSON numbers."""
    message = parse_message(_frame_text(frame))
    if not isinstance(message, StreamBatch):
        return
    for ticker in message.updates:
        wire = ticker.to_wire()
        json.dumps(wire, allow_nan=False)
        assert all(math.isfinite(v) for v in wire.values() if isinstance(v, float))


# -- cache.codec ----------------------------------------------------------------------------------------------

tickers = st.builds(
    Ticker,
    symbol=st.from_regex(SYMBOL_PATTERN, fullmatch=True),
    price=any_text, volume=any_text, high=any_text, low=any_text, change=any_text, change_percent=any_text,
    open=any_text, quote_volume=any_text,
    event_time=st.integers(min_value=0, max_value=2**63 - 1),
)


@PROPERTIES
@given(ticker=tickers)
def test_codec_round_trip_is_exact(ticker: Ticker) -> None:
    text = encode(ticker)
    assert decode(text) == ticker
    assert decode(text.encode()) == ticker


@PROPERTIES
@given(value=json_like.filter(lambda v: not _has_huge_int(v)))
def test_codec_refuses_anything_else_with_protocol_error(value: Any) -> None:
    try:
        decode(_frame_text(value))
    except ProtocolError:
        return
    assert isinstance(value, dict)  # only an object with exactly the Ticker fields decodes


@pytest.mark.parametrize("raw", [b"\xff\xfe", "", "[]", "null", '{"symbol": "BTCUSDT"}'])
def test_codec_refuses_garbage(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(raw)
