"""Channel history in memory: every update of a channel gets the next ``offset`` (1, 2, 3, ...) within an
``epoch``, and a client that comes back with the last position it saw gets exactly what it missed, or is told
that it is gone. Pure: the clock and the epoch maker are passed in.

A channel's epoch changes whenever its history starts afresh (a new process without a stored history, a switch
of store, a store that lost it), so an ``{offset, epoch}`` from before can never be mistaken for a position in
the new history. Retention is a count and an age per channel: what is older or beyond the count is forgotten,
and a position whose next update was forgotten cannot be recovered.

Each entry has a time ``at`` (seconds): the update's own event time, never earlier than the entry before it, so
time ranges and retention by age can rely on entries being in time order as well as in offset order.
"""
from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ChannelHistory", "Entry", "History", "Page", "Position", "Recovery", "Retention", "new_epoch",
           "select"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def new_epoch() -> str:
    """A short random epoch (8 hex digits)."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of a channel's history is kept: at most ``max_items`` updates of at most ``max_age`` seconds."""

    max_items: int
    max_age: float

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_age <= 0:
            raise ValueError("a history keeps at least one update for a positive time")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a client is in a channel's history: the offset of the last update it has, and the epoch."""

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One recorded update: its offset, its time (seconds), and the update."""

    offset: int
    at: float
    item: T


@dataclass(frozen=True, slots=True)
class Recovery(Generic[T]):
    """What a returning client gets: every missed update in order (``recovered``), or nothing and why not."""

    recovered: bool
    entries: tuple[Entry[T], ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a history read: the entries in offset order, and the offset to read ``after`` next (None:
    nothing more in the range)."""

    epoch: str
    entries: tuple[Entry[T], ...]
    next: int | None


def select(entries: Iterable[Entry[T]], after: int, start: float, end: float, limit: int
           ) -> tuple[list[Entry[T]], bool]:
    """The first ``limit`` entries with an offset above ``after`` and a time from ``start`` to ``end``
    (inclusive), in order; and whether more such entries follow them."""
    chosen: list[Entry[T]] = []
    for entry in entries:
        if entry.offset <= after or entry.at < start:
            continue
        if entry.at > end:
            break
        if len(chosen) == limit:
            return chosen, True
        chosen.append(entry)
    return chosen, False


class ChannelHistory(Generic[T]):
    """The retained updates of one channel, oldest first. Not thread-safe: its owner serialises appends."""

    def __init__(self, epoch: str, retention: Retention, clock: Callable[[], float], offset: int = 0,
                 entries: Iterable[Entry[T]] = ()) -> None:
        self.epoch = epoch
        self._retention = retention
        self._clock = clock
        self._entries: deque[Entry[T]] = deque(entries, maxlen=retention.max_items)
        # of the newest update; 0 before the first
        self.offset = max(offset, self._entries[-1].offset if self._entries else 0)
        self._last_at = self._entries[-1].at if self._entries else float("-inf")

    @property
    def position(self) -> Position:
        return Position(self.offset, self.epoch)

    @property
    def oldest(self) -> int:
        """The offset of the oldest update held (``offset + 1`` when none is)."""
        self._expire()
        return self._entries[0].offset if self._entries else self.offset + 1

    def append(self, item: T, at: float | None = None) -> Entry[T]:
        """Record an update at time ``at`` (default: now; never before the previous entry); returns its entry."""
        self.offset += 1
        at = self._clock() if at is None else at
        self._last_at = at = max(at, self._last_at)
        entry = Entry(self.offset, at, item)
        self._entries.append(entry)
        self._expire()
        return entry

    def since(self, position: Position, limit: int) -> Recovery[T]:
        """Every update after ``position``, if this history holds all of them and there are at most ``limit``."""
        if position.epoch != self.epoch:
            return Recovery(False, reason=f"epoch {position.epoch!r} is not the current one ({self.epoch!r})")
        if position.offset > self.offset or position.offset < 0:
            return Recovery(False, reason=f"offset {position.offset} is not in this history (newest {self.offset})")
        missed = self.offset - position.offset
        if missed > limit:
            return Recovery(False, reason=f"{missed} updates missed, more than one recovery sends ({limit})")
        oldest = self.oldest
        if missed and position.offset + 1 < oldest:
            return Recovery(False, reason=f"update {position.offset + 1} is no longer kept (oldest {oldest})")
        entries = tuple(self._entries)[len(self._entries) - missed:] if missed else ()
        return Recovery(True, entries)

    def page(self, after: int, start: float, end: float, limit: int) -> Page[T]:
        """Entries after offset ``after`` with a time from ``start`` to ``end``, at most ``limit`` of them."""
        self._expire()
        chosen, more = select(self._entries, after, start, end, limit)
        return Page(self.epoch, tuple(chosen), chosen[-1].offset if more and chosen else None)

    @property
    def newest(self) -> Entry[T] | None:
        """The newest update held (None: none is)."""
        return self._entries[-1] if self._entries else None

    def entries(self) -> list[Entry[T]]:
        """What is retained now, oldest first."""
        self._expire()
        return list(self._entries)

    def _expire(self) -> None:
        horizon = self._clock() - self._retention.max_age
        while self._entries and self._entries[0].at < horizon:
            self._entries.popleft()


class History(Generic[K, T]):
    """The histories of every channel, each started on its first update with an epoch of its own."""

    def __init__(self, retention: Callable[[K], Retention], clock: Callable[[], float],
                 epochs: Callable[[], str] = new_epoch) -> None:
        self._retention = retention
        self._clock = clock
        self._epochs = epochs
        self._channels: dict[K, ChannelHistory[T]] = {}

    def channel(self, key: K) -> ChannelHistory[T]:
        history = self._channels.get(key)
        if history is None:
            history = self._channels[key] = ChannelHistory(self._epochs(), self._retention(key), self._clock)
        return history

    def get(self, key: K) -> ChannelHistory[T] | None:
        """The channel's history if it has one (no update recorded and none adopted: None)."""
        return self._channels.get(key)

    def keys(self) -> list[K]:
        return list(self._channels)

    def append(self, key: K, item: T, at: float | None = None) -> Entry[T]:
        return self.channel(key).append(item, at)

    def adopt(self, key: K, epoch: str, offset: int, entries: Iterable[Entry[T]] = ()) -> ChannelHistory[T]:
        """Continue a stored history (epoch, newest offset, its newest entries) instead of starting afresh."""
        history = self._channels[key] = ChannelHistory(epoch, self._retention(key), self._clock, offset, entries)
        return history

    def restart(self, key: K) -> Position:
        """Forget a channel's history (it was lost): a new epoch, offsets from 1 again."""
        self._channels.pop(key, None)
        return self.channel(key).position

    def restart_all(self) -> None:
        """Forget every channel's history (the store changed): each starts afresh on its next update."""
        self._channels.clear()
