"""Field checks every exchange's payload parser shares: epoch milliseconds, bounded integer ids, flags and
objects. Pure; each raises ProtocolError naming the field and what it held."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streaming.core.errors import ProtocolError

__all__ = ["MAX_EPOCH_MS", "flag", "integer", "millis", "mapping"]

MAX_EPOCH_MS = 253_402_300_799_999  # the end of year 9999: every time stays printable as a datetime


def millis(payload: Mapping[str, Any], key: str) -> int:
    """An epoch-milliseconds field."""
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EPOCH_MS:
        raise ProtocolError(f"field {key!r} must be epoch milliseconds, got {value!r:.40}")
    return value


def integer(payload: Mapping[str, Any], key: str, maximum: int) -> int:
    """A whole-number field (an id, an update id, a sequence) from 0 to ``maximum``."""
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ProtocolError(f"field {key!r} must be an integer from 0 to {maximum}, got {value!r:.40}")
    return value


def flag(payload: Mapping[str, Any], key: str) -> bool:
    value = payload.get(key)
    if not isinstance(value, bool):
        raise ProtocolError(f"field {key!r} must be true or false, got {value!r:.40}")
    return value


def mapping(value: object, what: str) -> Mapping[str, Any]:
    """``value`` if it is an object (``what`` names it in the error)."""
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what} must be an object, got {type(value).__name__}")
    return value
