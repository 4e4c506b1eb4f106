"""RedisHistory: each channel's history as a Redis Stream, ``history:<kind>:<SYMBOL>``.

An entry's stream id is ``<offset>-0``, so offsets are read directly (``XRANGE history:trade:BTCUSDT 42 +``);
its fields are ``t`` (the update's time, epoch ms, never decreasing within a stream) and ``d`` (the update's
wire JSON, without offset and epoch). The hash ``history:meta`` holds ``<epoch>:<newest offset>`` per channel:
what a new process continues from. Appends are checked against it in one script, so a history that Redis lost
(flushed, evicted, replaced by another epoch) is noticed at the next write instead of being continued under a
wrong epoch. An append is idempotent: entries at or below the stored newest offset are skipped, so a write that
timed out (and may have been applied) can be sent again. Count retention is ``XADD ... MAXLEN ~``; age
retention trims the oldest entries by their ``t``.

Every Redis failure raises HistoryUnavailable; the recorder decides what to do about it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache.store import REDIS_TIMEOUT
from streaming.core.errors import StreamingError
from streaming.core.history import Entry

__all__ = ["HistoryUnavailable", "RedisHistory", "ChannelAppend", "STREAM_PREFIX", "META_KEY"]

STREAM_PREFIX = "history:"
META_KEY = "history:meta"

# KEYS: stream, meta. ARGV: channel, epoch, fresh (1: the epoch starts here), maxlen, then (id, t, d) triples.
# Returns 1, or 0 when the stored epoch is not ours (the history was lost or replaced): nothing is written then.
# Entries at or below the stored newest offset are there already (a write sent again) and are skipped.
_APPEND = """
local meta = redis.call('HGET', KEYS[2], ARGV[1])
local stored = -1
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
elseif (not meta) or string.sub(meta, 1, #ARGV[2] + 1) ~= ARGV[2] .. ':' then
  return 0
else
  stored = tonumber(string.sub(meta, #ARGV[2] + 2)) or -1
end
local last = nil
for i = 5, #ARGV, 3 do
  if tonumber(string.sub(ARGV[i], 1, -3)) > stored then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[i], 't', ARGV[i + 1], 'd', ARGV[i + 2])
    last = ARGV[i]
  end
end
if last then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. string.sub(last, 1, -3))
elseif ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':0')
end
return 1
"""


class HistoryUnavailable(StreamingError):
    """Redis failed. ``timed_out``: it did not answer in time (it may only be slow, and a write may have been
    applied), rather than refusing or dropping the connection."""

    code = "HISTORY_UNAVAILABLE"

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class ChannelAppend:
    """Entries of one channel to append, in offset order; ``fresh``: they begin a new epoch (replace the
    stream)."""

    epoch: str
    fresh: bool
    max_items: int
    entries: tuple[Entry[str], ...]


def stream_key(channel: str) -> str:
    return STREAM_PREFIX + channel


def _entry(raw_id: bytes, fields: Mapping[bytes, bytes]) -> Entry[str]:
    return Entry(int(raw_id.split(b"-", 1)[0]), int(fields[b"t"]) / 1000.0, fields[b"d"].decode())


# The bound for everything but a request's reads: the recorder's writes, trims and pings and the start-up reads
# run in the background, where nothing waits on them but the history itself. Under a reconnect storm (a deploy's
# clients all coming back at once) the event loop can go more than a second between two looks at a socket, and
# an answer that arrived meanwhile times out all the same. The recorder sends a timed-out write again (appends
# are idempotent) for a while before it takes Redis for down, which starts every channel with a new epoch.
BACKGROUND_TIMEOUT = 5.0


def _client(host: str, port: int, db: int, timeout: float) -> redis.Redis:
    return redis.Redis(host=host, port=port, db=db, socket_timeout=timeout, socket_connect_timeout=timeout,
                       retry=Retry(NoBackoff(), 0), health_check_interval=0)


class RedisHistory:
    def __init__(self, host: str, port: int, db: int, background_timeout: float = BACKGROUND_TIMEOUT) -> None:
        self._client = _client(host, port, db, background_timeout)
        self._requests = _client(host, port, db, REDIS_TIMEOUT)  # read(): a slow Redis must not hold a request
        self._append = self._client.register_script(_APPEND)
        self.address = f"{host}:{port}/{db}"

    def _fail(self, what: str, exc: redis.RedisError) -> HistoryUnavailable:
        return HistoryUnavailable(f"{what} Redis at {self.address} failed: {exc}", isinstance(exc, redis.TimeoutError))

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise self._fail("pinging", exc) from exc

    # -- writes -----------------------------------------------------------------------------------------------
    def append(self, batches: Mapping[str, ChannelAppend]) -> set[str]:
        """Append each channel's entries in one pipeline; returns the channels whose stored history was not
        the one appended to (lost or replaced: nothing was written for them)."""
        pipe = self._client.pipeline(transaction=False)
        order = []
        for channel, batch in batches.items():
            args: list[str | int] = [channel, batch.epoch, 1 if batch.fresh else 0, batch.max_items]
            for entry in batch.entries:
                args += (f"{entry.offset}-0", int(entry.at * 1000), entry.item)
            self._append(keys=[stream_key(channel), META_KEY], args=args, client=pipe)
            order.append(channel)
        if not order:
            return set()
        try:
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise self._fail("writing history to", exc) from exc
        lost = set()
        for channel, result in zip(order, results):
            if isinstance(result, redis.ConnectionError | redis.TimeoutError):
                raise self._fail("writing history to", result)
            if isinstance(result, Exception) or result != 1:  # a script error (e.g. an id not above the last)
                lost.add(channel)
        return lost

    def trim_older_than(self, channels: Iterable[str], horizon: float) -> int:
        """Delete the entries older than ``horizon`` (epoch seconds) of each channel; returns how many were
        deleted. One small read per channel (its oldest entry) when nothing is that old."""
        channels = list(channels)
        horizon_ms = horizon * 1000
        try:
            pipe = self._client.pipeline(transaction=False)
            for channel in channels:
                pipe.xrange(stream_key(channel), count=1)
            aged = [channel for channel, rows in zip(channels, pipe.execute())
                    if rows and int(rows[0][1][b"t"]) < horizon_ms]
            if not aged:
                return 0
            pipe = self._client.pipeline(transaction=False)
            for channel in aged:  # the first entry young enough to keep, found by a binary search over the ids
                first = self._first_at(stream_key(channel), horizon, self._client)
                pipe.xtrim(stream_key(channel), minid=f"{first}-0", approximate=False)
            return sum(pipe.execute())
        except redis.RedisError as exc:
            raise self._fail("trimming history in", exc) from exc

    # -- reads ------------------------------------------------------------------------------------------------
    def positions(self) -> dict[str, tuple[str, int]]:
        """Every stored channel's (epoch, newest offset)."""
        try:
            meta = self._client.hgetall(META_KEY)
        except redis.RedisError as exc:
            raise self._fail("reading history positions from", exc) from exc
        positions = {}
        for raw_channel, raw in meta.items():
            epoch, _, offset = raw.decode().rpartition(":")
            if epoch and offset.isdigit():
                positions[raw_channel.decode()] = (epoch, int(offset))
        return positions

    def position(self, channel: str) -> tuple[str, int] | None:
        """One stored channel's (epoch, newest offset); None when Redis holds no history of it."""
        try:
            raw = self._client.hget(META_KEY, channel)
        except redis.RedisError as exc:
            raise self._fail("reading a history position from", exc) from exc
        if raw is None:
            return None
        epoch, _, offset = raw.decode().rpartition(":")
        return (epoch, int(offset)) if epoch and offset.isdigit() else None

    def newest(self, channel: str, count: int) -> tuple[str, int, list[Entry[str]]] | None:
        """A stored channel's epoch, newest offset and newest ``count`` entries (oldest first), read in one
        transaction, so all three belong together; None when Redis holds no history of it."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hget(META_KEY, channel)
        pipe.xrevrange(stream_key(channel), count=count)
        try:
            raw, rows = pipe.execute()
        except redis.RedisError as exc:
            raise self._fail("reading history from", exc) from exc
        if raw is None:
            return None
        epoch, _, offset = raw.decode().rpartition(":")
        if not epoch or not offset.isdigit():
            return None
        return epoch, int(offset), [_entry(raw_id, fields) for raw_id, fields in reversed(rows)]

    def tail(self, channel: str, count: int) -> list[Entry[str]]:
        """The newest ``count`` entries, oldest first."""
        try:
            rows = self._client.xrevrange(stream_key(channel), count=count)
        except redis.RedisError as exc:
            raise self._fail("reading history from", exc) from exc
        return [_entry(raw_id, fields) for raw_id, fields in reversed(rows)]

    def read(self, channel: str, after: int, start: float, end: float, limit: int) -> tuple[list[Entry[str]], bool]:
        """Like streaming.core.history.select over the stored stream: the first ``limit`` entries above offset
        ``after`` with a time from ``start`` to ``end`` (epoch seconds), and whether more follow."""
        key = stream_key(channel)
        try:
            first = max(after + 1, self._first_at(key, start, self._requests)) if start > 0 else after + 1
            rows = self._requests.xrange(key, min=f"{first}-0", count=limit + 1)
        except redis.RedisError as exc:
            raise self._fail("reading history from", exc) from exc
        chosen = [entry for entry in map(lambda row: _entry(*row), rows) if entry.at <= end]
        return chosen[:limit], len(chosen) > limit

    def _first_at(self, key: str, start: float, client: redis.Redis) -> int:
        """The lowest offset whose time is at least ``start`` (a binary search over the ids; 1 if none is
        older)."""
        oldest = client.xrange(key, count=1)
        newest = client.xrevrange(key, count=1)
        if not oldest:
            return 1
        low, high = int(oldest[0][0].split(b"-", 1)[0]), int(newest[0][0].split(b"-", 1)[0]) + 1
        start_ms = start * 1000
        while low < high:  # the first offset in [low, high) at or after start
            middle = (low + high) // 2
            row = client.xrange(key, min=f"{middle}-0", count=1)
            if not row:
                high = middle
                continue
            offset = int(row[0][0].split(b"-", 1)[0])
            if int(row[0][1][b"t"]) >= start_ms:
                high = min(middle, offset)
            else:
                low = offset + 1
        return low

    def close(self) -> None:
        self._client.close()
        self._requests.close()
