"""Positions as clients send them back: ``since: {"trade:BTCUSDT": {"offset": 42, "epoch": "9f3a61c2"}}`` in a
subscribe, and channel keys such as ``trade:BTCUSDT``. Pure.
"""
from __future__ import annotations

import re

from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import InvalidRequestError
from streaming.core.history import Position
from streaming.core.symbols import InvalidSymbolError, normalise_symbol, shown_item

__all__ = ["parse_channel_key", "parse_since", "MAX_OFFSET"]

MAX_OFFSET = 2**53 - 1  # the largest integer every JSON client (JavaScript's numbers) holds exactly
_EPOCH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXAMPLE = '{"trade:BTCUSDT": {"offset": 42, "epoch": "9f3a61c2"}}'


_EXCHANGE = re.compile(r"^[a-z][a-z0-9]{0,19}$")


def parse_channel_key(key: str) -> Channel | None:
    """The channel of a key such as ``trade:BTCUSDT`` or ``bybit:trade:BTCUSDT`` (None for anything else)."""
    parts = key.split(":")
    if len(parts) == 2:
        exchange, (kind, symbol) = BINANCE, parts
    elif len(parts) == 3 and _EXCHANGE.match(parts[0]) and parts[0] != BINANCE:
        exchange, kind, symbol = parts
    else:
        return None
    if kind not in set(Kind) or not symbol:
        return None
    try:
        return Channel(exchange, Kind(kind), normalise_symbol(symbol))
    except InvalidSymbolError:
        return None


def parse_since(value: object, max_entries: int) -> dict[Channel, Position]:
    """The positions of a subscribe's ``since`` (absent: none). Raises InvalidRequestError for anything that
    is not an object of at most ``max_entries`` channel keys, each with a whole ``offset`` of at least 0 and an
    ``epoch`` string: a bad ``since`` refuses the whole request."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"'since' must be an object like {_EXAMPLE}; got {shown_item(value)!r}")
    if len(value) > max_entries:
        raise InvalidRequestError(f"'since' has {len(value)} entries; at most {max_entries} (one per subscribed "
                                  "stream of each symbol)")
    positions: dict[Channel, Position] = {}
    for key, position in value.items():
        channel = parse_channel_key(key) if isinstance(key, str) else None
        if channel is None:
            names = ", ".join(f'"{kind}"' for kind in Kind)
            raise InvalidRequestError(f"'since' has the key {shown_item(key)!r}; keys are \"<stream>:<SYMBOL>\" "
                                      f"(or \"<exchange>:<stream>:<SYMBOL>\" off Binance) with a stream of "
                                      f"{names}, e.g. \"trade:BTCUSDT\" or \"bybit:trade:BTCUSDT\"")
        if not isinstance(position, dict):
            raise InvalidRequestError(f"'since' of {channel.key} must be an object like {{\"offset\": 42, "
                                      f"\"epoch\": \"9f3a61c2\"}}; got {shown_item(position)!r}")
        offset, epoch = position.get("offset"), position.get("epoch")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequestError(f"'since' of {channel.key}: 'offset' must be a whole number from 0 to "
                                      f"{MAX_OFFSET} (the last offset received); got {shown_item(offset)!r}")
        if not isinstance(epoch, str) or not _EPOCH.match(epoch):
            raise InvalidRequestError(f"'since' of {channel.key}: 'epoch' must be the epoch string received with "
                                      f"that offset; got {shown_item(epoch)!r}")
        positions[channel] = Position(offset, epoch)
    return positions
