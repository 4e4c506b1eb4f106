"""What the leader publishes per update, and how a gateway reads it. Pure.

A message is ``<offset> <epoch> <published µs> <packet>``: the channel's offset and epoch, when the leader
took the update from the exchange's stream (its clock, epoch microseconds: the hop's latency is measured from
there), and the Socket.IO EVENT packet exactly as
python-socketio would encode it (``2["price_update",{...,"offset":7,"epoch":"9f3a01bc"}]``). A gateway splits off
the three numbers and writes the packet as it is; it parses no JSON per message.

The same packet is built in two places: by the leader's Lua script (streaming/cluster/scripts.py) from an
update's stored wire form, and by streaming.core.packets from a history entry (what a gateway sends from
Redis when it fills a gap). A history entry's ``d`` is the update's wire JSON without ``offset`` and ``epoch``,
compact (no spaces), as the recorder stores it; both builders append the position as its last members.

A notice about a channel (``stream_status``: its stream went quiet, or is live again) goes on the same pub/sub
channel, so it stays in order with the channel's updates; its offset is NOTICE (0) and its epoch ``-``.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NOTICE", "Message", "MalformedMessage", "notice_message", "parse_message"]

NOTICE = 0  # the offset of a message that is not one of the channel's updates (stream_status): sent as it is


class MalformedMessage(ValueError):
    """A pub/sub message that is not ``<offset> <epoch> <µs> <packet>``."""


@dataclass(frozen=True, slots=True)
class Message:
    offset: int
    epoch: str
    published_us: int
    packet: str


def notice_message(published_us: int, event: str, data: str) -> str:
    """The message of a notice (``data``: its compact JSON payload)."""
    return f'{NOTICE} - {published_us} 2["{event}",{data}]'


def parse_message(raw: bytes | str) -> Message:
    """Split a published message; raises MalformedMessage."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split(" ", 3)
    if len(parts) != 4 or not parts[3].startswith('2["'):
        raise MalformedMessage(f"not '<offset> <epoch> <µs> <packet>': {text[:80]!r}")
    try:
        return Message(int(parts[0]), parts[1], int(parts[2]), parts[3])
    except ValueError:
        raise MalformedMessage(f"offset or time is not a number: {text[:80]!r}") from None
