"""Channel history in memory: every update of a channel gets the next ``offset`` (1, 2, 3, ...) within an
``epoch``, and a client that comes back with the last position it saw gets exactly what it missed, or is told
that it is gone. Pure: the clock and the epoch maker are passed in.

A channel's epoch changes whenever its history starts afresh (a new process without a stored history, a switch
of store), so an ``{offset, epoch}`` from before can never be mistaken for a position in the new history.
Retention is a count and an age per channel: what is older or beyond the count is forgotten, and a position
whose next update was forgotten cannot be recovered.
"""
from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ChannelHistory", "Entry", "History", "Position", "Recovery", "new_epoch"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def new_epoch() -> str:
    """A short random epoch (8 hex digits)."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client is in a channel's history: the offset of the last update it has, and the epoch."""

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One recorded update: its offset, when it was recorded (seconds of the history's clock), and the update."""

    offset: int
    at: float
    item: T


@dataclass(frozen=True, slots=True)
class Recovery(Generic[T]):
    """What a returning client gets: every missed update in order (``recovered``), or nothing and why not."""

    recovered: bool
    entries: tuple[Entry[T], ...] = ()
    reason: str = ""


class ChannelHistory(Generic[T]):
    """The retained updates of one channel, oldest first. Not thread-safe: its owner serialises appends."""

    def __init__(self, epoch: str, max_items: int, max_age: float, clock: Callable[[], float]) -> None:
        if max_items < 1 or max_age <= 0:
            raise ValueError("a history keeps at least one update for a positive time")
        self.epoch = epoch
        self._max_items = max_items
        self._max_age = max_age
        self._clock = clock
        self._entries: deque[Entry[T]] = deque(maxlen=max_items)
        self.offset = 0  # of the newest update; 0 before the first

    @property
    def position(self) -> Position:
        return Position(self.offset, self.epoch)

    def append(self, item: T) -> Position:
        """Record an update; returns its position."""
        self.offset += 1
        self._entries.append(Entry(self.offset, self._clock(), item))
        self._expire()
        return self.position

    def since(self, position: Position, limit: int) -> Recovery[T]:
        """Every update after ``position``, if this history holds all of them and there are at most ``limit``."""
        if position.epoch != self.epoch:
            return Recovery(False, reason=f"epoch {position.epoch!r} is not the current one ({self.epoch!r})")
        if position.offset > self.offset or position.offset < 0:
            return Recovery(False, reason=f"offset {position.offset} is not in this history (newest {self.offset})")
        missed = self.offset - position.offset
        if missed > limit:
            return Recovery(False, reason=f"{missed} updates missed, more than one recovery sends ({limit})")
        self._expire()
        oldest = self._entries[0].offset if self._entries else self.offset + 1
        if missed and position.offset + 1 < oldest:
            return Recovery(False, reason=f"update {position.offset + 1} is no longer kept (oldest {oldest})")
        entries = tuple(self._entries)[len(self._entries) - missed:] if missed else ()
        return Recovery(True, entries)

    def entries(self) -> list[Entry[T]]:
        """What is retained now, oldest first."""
        self._expire()
        return list(self._entries)

    def _expire(self) -> None:
        horizon = self._clock() - self._max_age
        while self._entries and self._entries[0].at < horizon:
            self._entries.popleft()


class History(Generic[K, T]):
    """The histories of every channel, each started on its first update with an epoch of its own."""

    def __init__(self, max_items: int, max_age: float, clock: Callable[[], float],
                 epochs: Callable[[], str] = new_epoch) -> None:
        self._max_items = max_items
        self._max_age = max_age
        self._clock = clock
        self._epochs = epochs
        self._channels: dict[K, ChannelHistory[T]] = {}

    def channel(self, key: K) -> ChannelHistory[T]:
        history = self._channels.get(key)
        if history is None:
            history = self._channels[key] = ChannelHistory(self._epochs(), self._max_items, self._max_age,
                                                           self._clock)
        return history

    def append(self, key: K, item: T) -> Position:
        return self.channel(key).append(item)

    def restart(self, key: K) -> Position:
        """Forget a channel's history (it was lost): a new epoch, offsets from 1 again."""
        self._channels.pop(key, None)
        return self.channel(key).position
