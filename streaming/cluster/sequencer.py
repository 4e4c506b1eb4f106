"""What a gateway does with each message of a channel, given the position it forwarded last. Pure.

The leader's script numbers a channel's updates without a hole, so a gateway forwards a message only when it is
the next one: an offset at or below the last one forwarded is a repeat (a message that also came in a gap's
fill, or a resubscription's catch-up) and is dropped; an offset further on means messages were missed (the
gateway was not subscribed, or the pub/sub connection broke) and the gap is filled from the history first. A
message of another epoch starts the channel afresh: its history began again, and offsets count from there.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Step", "Verdict", "decide"]


class Verdict(Enum):
    FORWARD = "forward"  # the next update: send it
    REPEAT = "repeat"  # already forwarded: drop it
    GAP = "gap"  # updates after the last one forwarded and before this one are missing: fill them, then send it
    NEW_EPOCH = "new_epoch"  # the channel's history started again: forget what was held, send it


@dataclass(frozen=True, slots=True)
class Step:
    verdict: Verdict
    missing_from: int = 0  # GAP: the first missing offset
    missing_to: int = 0  # GAP: the last missing offset


def decide(epoch: str | None, offset: int, message_epoch: str, message_offset: int) -> Step:
    """The step for a message at ``(message_epoch, message_offset)`` when the last update forwarded was at
    ``(epoch, offset)`` (``epoch`` None: nothing forwarded or known yet)."""
    if epoch != message_epoch:
        return Step(Verdict.NEW_EPOCH)
    if message_offset <= offset:
        return Step(Verdict.REPEAT)
    if message_offset == offset + 1:
        return Step(Verdict.FORWARD)
    return Step(Verdict.GAP, offset + 1, message_offset - 1)
