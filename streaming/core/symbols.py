"""Symbol rules: normalise and validate symbols and symbol requests. Pure: imports no I/O."""
from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass

from streaming.core.errors import InvalidRequestError, InvalidSymbolError, TooManySymbolsError

__all__ = [
    "SYMBOL_PATTERN",
    "MAX_SYMBOL_LENGTH",
    "InvalidSymbolError",
    "SymbolRequest",
    "normalise_symbol",
    "parse_symbol_request",
    "shown_item",
]

MAX_SYMBOL_LENGTH = 32
# Upper-case ASCII letters and digits, with '_' for dated contracts (BTCUSDT_260327), which are rejected later
# as "not a perpetual" rather than as malformed.
SYMBOL_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9_]{1,31}")


def normalise_symbol(raw: object) -> str:
    """Return the canonical (upper-case, trimmed) form of a client-supplied symbol.

    Raises InvalidSymbolError when it is not a string of the form Binance uses.
    """
    if not isinstance(raw, str):
        raise InvalidSymbolError(f"symbol must be a string, got {type(raw).__name__}")
    candidate = raw.strip()
    if not candidate.isascii():  # before upper(): 'ſ'.upper() is 'S', and symbols are ASCII
        raise InvalidSymbolError(
            f"invalid symbol '{shown_item(candidate)}': expected ASCII letters and digits such as 'BTCUSDT'"
        )
    candidate = candidate.upper()
    if not candidate:
        raise InvalidSymbolError("symbol is empty; send a symbol such as 'BTCUSDT'")
    if len(candidate) > MAX_SYMBOL_LENGTH or not SYMBOL_PATTERN.fullmatch(candidate):
        raise InvalidSymbolError(
            f"invalid symbol '{shown_item(candidate)}': expected 2-{MAX_SYMBOL_LENGTH} letters and digits such as "
            "'BTCUSDT'"
        )
    return candidate


@dataclass(frozen=True)
class SymbolRequest:
    """A ``{symbols: [...]}`` request after validation: canonical symbols (deduplicated, in order) and the
    items that were rejected, each with the reason."""

    symbols: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]  # (shown item, reason)


MAX_SHOWN_ITEM = 40


def parse_symbol_request(payload: object, max_symbols: int | None = None) -> SymbolRequest:
    """Validate a subscribe/unsubscribe payload. Raises InvalidRequestError when its shape is wrong (and
    TooManySymbolsError past ``max_symbols`` items); bad items are returned in ``rejected`` so the good ones
    can still be served."""
    if not isinstance(payload, dict):
        raise InvalidRequestError(
            f"expected an object like {{\"symbols\": [\"BTCUSDT\"]}}, got {_type_name(payload)}"
        )
    if "symbols" not in payload:
        raise InvalidRequestError("missing 'symbols': send {\"symbols\": [\"BTCUSDT\", \"ETHUSDT\"]}")
    items = payload["symbols"]
    if not isinstance(items, list):
        raise InvalidRequestError(f"'symbols' must be a list of strings, got {_type_name(items)}")
    if not items:
        raise InvalidRequestError("'symbols' is empty: name at least one symbol such as 'BTCUSDT'")
    if max_symbols is not None and len(items) > max_symbols:
        raise TooManySymbolsError(
            f"'symbols' has {len(items)} items; at most {max_symbols} per request: split it into several requests"
        )
    symbols: list[str] = []
    seen: set[str] = set()
    rejected: list[tuple[str, str]] = []
    for item in items:
        try:
            symbol = normalise_symbol(item)
        except InvalidSymbolError as exc:
            rejected.append((shown_item(item), str(exc)))
            continue
        if symbol not in seen:
            seen.add(symbol)
            symbols.append(symbol)
    return SymbolRequest(tuple(symbols), tuple(rejected))


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def shown_item(item: object) -> str:
    """A short, printable rendering of a client item for error messages (never its whole length)."""
    try:
        text = item if isinstance(item, str) else reprlib.repr(item)
    except ValueError:  # e.g. an int too long to print
        text = f"<{type(item).__name__}>"
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[:MAX_SHOWN_ITEM])
    return shown + ("..." if len(text) > MAX_SHOWN_ITEM else "")
