"""cache.history_store and the recorder against a real Redis: entries by offset, pages by time, trimming by
age, a history Redis lost noticed at the next write, and a new process continuing a stored epoch."""
from __future__ import annotations

import time

import pytest
import redis
from prometheus_client import CollectorRegistry

from cache.history_store import META_KEY, ChannelAppend, HistoryUnavailable, RedisHistory
from metrics.collectors import ServiceMetrics
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.history import Entry, Position, Retention
from streaming.hub.recorder import HistoryStore, Recorder
from tests.helpers import wait_for

KEY = "trade:BTCUSDT"
CHANNEL = Channel(BINANCE, Kind.TRADE, "BTCUSDT")


def entries(first: int, last: int, at: float = 1000.0) -> tuple[Entry[str], ...]:
    return tuple(Entry(n, at + n, f'{{"id":{n}}}') for n in range(first, last + 1))


def test_entries_are_read_by_offset_and_time_and_trimmed_by_age(private_redis) -> None:
    store = RedisHistory("127.0.0.1", private_redis.port, 0)
    assert store.append({KEY: ChannelAppend("e1", True, 1000, entries(1, 50))}) == set()
    assert store.append({KEY: ChannelAppend("e1", False, 1000, entries(51, 60))}) == set()
    assert store.positions() == {KEY: ("e1", 60)}
    page, more = store.read(KEY, after=10, start=0, end=float("inf"), limit=5)
    assert [e.offset for e in page] == [11, 12, 13, 14, 15] and more and page[0].item == '{"id":11}'
    page, more = store.read(KEY, after=0, start=1020.0, end=1022.0, limit=10)
    assert [e.offset for e in page] == [20, 21, 22] and not more, "from and to are inclusive, by time"
    assert [e.offset for e in store.tail(KEY, 3)] == [58, 59, 60]
    assert store.trim_older_than([KEY], horizon=1030.5) == 30
    assert store.trim_older_than([KEY], horizon=1030.5) == 0
    assert [e.offset for e in store.read(KEY, 0, 0, float("inf"), 1)[0]] == [31]
    store.close()


def test_a_history_redis_lost_or_another_epoch_is_not_appended_to(private_redis) -> None:
    store = RedisHistory("127.0.0.1", private_redis.port, 0)
    client = redis.Redis(port=private_redis.port)
    store.append({KEY: ChannelAppend("e1", True, 1000, entries(1, 5))})
    assert store.append({KEY: ChannelAppend("other", False, 1000, entries(6, 6))}) == {KEY}
    client.flushdb()
    assert store.append({KEY: ChannelAppend("e1", False, 1000, entries(6, 6))}) == {KEY}, "flushed"
    assert not client.exists("history:" + KEY), "nothing written to a lost history"
    assert store.append({KEY: ChannelAppend("e2", True, 1000, entries(1, 2))}) == set(), "a new epoch replaces it"
    assert client.hget(META_KEY, KEY) == b"e2:2"
    store.close()


def test_a_slow_answer_fails_a_request_read_fast_but_not_a_background_write(private_redis) -> None:
    """Redis answering after 1.5 s (what a busy event loop makes of a prompt answer): the recorder's write waits
    for it (a timeout would start every channel afresh, so no client could recover), a request's read does not."""
    store = RedisHistory("127.0.0.1", private_redis.port, 0)
    client = redis.Redis(port=private_redis.port)
    store.append({KEY: ChannelAppend("e1", True, 1000, entries(1, 5))})
    client.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    started = time.monotonic()
    with pytest.raises(HistoryUnavailable, match="reading history from"):
        store.read(KEY, after=0, start=0, end=float("inf"), limit=5)
    assert time.monotonic() - started < 1.0
    assert store.append({KEY: ChannelAppend("e1", False, 1000, entries(6, 7))}) == set()
    assert time.monotonic() - started >= 1.4, "the write waited for the pause to end"
    assert store.positions() == {KEY: ("e1", 7)}
    store.close()


def test_an_append_sent_again_skips_what_is_stored_and_a_timeout_says_so(private_redis) -> None:
    """A write that timed out may have been applied: sending it again (with what came since) adds each entry
    once. The error tells a timeout (Redis may only be slow) from a Redis that is gone."""
    store = RedisHistory("127.0.0.1", private_redis.port, 0, background_timeout=0.3)
    client = redis.Redis(port=private_redis.port)
    assert store.append({KEY: ChannelAppend("e1", True, 1000, entries(1, 5))}) == set()
    assert store.append({KEY: ChannelAppend("e1", False, 1000, entries(3, 8))}) == set()
    assert [int(raw_id.split(b"-")[0]) for raw_id, _ in client.xrange("history:" + KEY)] == list(range(1, 9))
    assert client.hget(META_KEY, KEY) == b"e1:8"
    assert store.append({KEY: ChannelAppend("e1", False, 1000, entries(1, 8))}) == set(), "all there: a no-op"
    assert client.xlen("history:" + KEY) == 8 and client.hget(META_KEY, KEY) == b"e1:8"
    assert store.append({KEY: ChannelAppend("e1", True, 1000, entries(1, 3))}) == set(), "fresh replaces"
    assert client.xlen("history:" + KEY) == 3 and client.hget(META_KEY, KEY) == b"e1:3"
    client.execute_command("CLIENT", "PAUSE", 1000, "ALL")
    with pytest.raises(HistoryUnavailable) as slow:
        store.append({KEY: ChannelAppend("e1", False, 1000, entries(4, 4))})
    assert slow.value.timed_out
    time.sleep(1.0)
    private_redis.stop()
    with pytest.raises(HistoryUnavailable) as gone:
        store.append({KEY: ChannelAppend("e1", False, 1000, entries(4, 4))})
    assert not gone.value.timed_out
    store.close()


def recorder(port: int, tasks, timeout: float = 5.0) -> Recorder:
    return Recorder(RedisHistory("127.0.0.1", port, 0, background_timeout=timeout),
                    {kind: Retention(1000, 86400) for kind in Kind}, 1000, 100, tasks,
                    ServiceMetrics(CollectorRegistry()))


def stored_offsets(port: int) -> list[int]:
    return [int(raw_id.split(b"-")[0]) for raw_id, _ in redis.Redis(port=port).xrange("history:" + KEY)]


def test_writes_that_time_out_are_sent_again_and_every_channel_keeps_its_epoch(tasks, private_redis) -> None:
    """Redis answering too late for the writes' timeout, for a while (what a reconnect storm's busy event loop
    makes of a prompt Redis): the history stays in Redis, in the same epoch, and holds every update once."""
    history = recorder(private_redis.port, tasks, timeout=0.2)
    history.start()
    first = history.record(CHANNEL, {"id": 0}, time.time())
    wait_for(lambda: stored_offsets(private_redis.port) == [1], timeout=3)
    redis.Redis(port=private_redis.port).execute_command("CLIENT", "PAUSE", 1500, "ALL")
    positions = [first]
    during = ""
    for n in range(1, 30):
        positions.append(history.record(CHANNEL, {"id": n}, time.time()))
        if n == 20:  # about 1 s into the 1.5 s pause: several writes have timed out by now
            during = history.status()[1]
        time.sleep(0.05)
    assert "time out" in during, "/health says the writes time out"
    wait_for(lambda: stored_offsets(private_redis.port) == list(range(1, 31)), timeout=5,
             message="every update in Redis once, in order")
    assert history.store is HistoryStore.REDIS and {p.epoch for p in positions} == {first.epoch}
    assert history.status()[1] == f"history in Redis Streams at 127.0.0.1:{private_redis.port}/0"
    recovery = history.recover(CHANNEL, positions[3], 100)
    assert recovery.recovered and [e.offset for e in recovery.entries] == list(range(5, 31))
    history.stop()


def test_writes_that_keep_timing_out_send_the_history_to_memory(tasks, private_redis, monkeypatch) -> None:
    monkeypatch.setattr("streaming.hub.recorder.TIMEOUT_GRACE", 0.5)
    history = recorder(private_redis.port, tasks, timeout=0.2)
    history.start()
    before = history.record(CHANNEL, {"id": 0}, time.time())
    redis.Redis(port=private_redis.port).execute_command("CLIENT", "PAUSE", 3000, "ALL")
    history.record(CHANNEL, {"id": 1}, time.time())
    wait_for(lambda: history.store is HistoryStore.MEMORY, timeout=2.5, message="memory after the grace")
    assert history.position(CHANNEL).epoch != before.epoch
    history.stop()


def test_a_new_process_continues_the_stored_epoch_and_redis_going_away_starts_a_new_one(tasks, private_redis) -> None:
    first = recorder(private_redis.port, tasks)
    first.start()
    positions = [first.record(CHANNEL, {"id": n}, time.time()) for n in range(5)]
    assert [p.offset for p in positions] == [1, 2, 3, 4, 5] and first.store is HistoryStore.REDIS
    first.stop()
    second = recorder(private_redis.port, tasks)
    second.start()
    assert second.position(CHANNEL) == positions[-1], "the epoch and offsets go on"
    recovery = second.recover(CHANNEL, positions[1], 10)
    assert recovery.recovered and [e.offset for e in recovery.entries] == [3, 4, 5]
    assert second.record(CHANNEL, {"id": 5}, time.time()) == Position(6, positions[0].epoch)
    private_redis.stop()
    wait_for(lambda: second.store is HistoryStore.MEMORY, timeout=5, message="the switch to memory")
    switched = second.position(CHANNEL)
    assert switched.epoch != positions[0].epoch and switched.offset == 0
    assert not second.recover(CHANNEL, positions[-1], 10).recovered
    private_redis.start()
    wait_for(lambda: second.store is HistoryStore.REDIS, timeout=10, message="Redis again")
    assert second.position(CHANNEL).epoch not in (switched.epoch, positions[0].epoch), "a new epoch again"
    second.stop()
