"""WebSocket frames as a server sends them (RFC 6455 section 5.2): final, unmasked, one frame per message.

Pure: the fan-out builds a price update's frame once and writes the same bytes to every recipient.
"""
from __future__ import annotations

import struct

__all__ = ["TEXT", "BINARY", "frame"]

TEXT = 0x1
BINARY = 0x2
_FIN = 0x80


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One complete, unmasked data frame carrying ``payload`` (for TEXT, UTF-8 encoded text)."""
    if opcode not in (TEXT, BINARY):
        raise ValueError(f"frame() builds data frames only: opcode {opcode:#x} is not TEXT or BINARY")
    first = _FIN | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload
