"""cache.writer + cache.store against a real Redis: batching, TTL, fall back to memory, recovery."""
from __future__ import annotations

import json

import redis

from cache.store import RedisStore
from cache.writer import CacheStatus, TickerCache
from metrics.collectors import ServiceMetrics
from tests.helpers import wait_for
from tests.unit.test_models import make_ticker


def make_cache(tasks, port: int, ttl: float = 60.0) -> TickerCache:
    return TickerCache(RedisStore("127.0.0.1", port, 0, ttl), tasks, ServiceMetrics())


def test_ticks_are_coalesced_per_symbol_and_written_with_a_ttl(tasks, private_redis) -> None:
    cache = make_cache(tasks, private_redis.port, ttl=30)
    client = redis.Redis(port=private_redis.port)
    try:
        for i in range(100):  # before the writer runs: only the newest per symbol is written
            cache.offer(make_ticker(event_time=1_000 + i, price=f"{100 + i}.5"))
            cache.offer(make_ticker(symbol="ETHUSDT", event_time=1_000 + i))
        assert cache.flush() == 0, "nothing is written before the writer connected"
        cache.start()
        wait_for(lambda: client.exists("price:BTCUSDT") and client.exists("price:ETHUSDT"))
        stored = json.loads(client.get("price:BTCUSDT"))
        assert stored["price"] == "199.5" and stored["event_time"] == 1_099
        assert 0 < client.pttl("price:BTCUSDT") <= 30_000
        # counted once the pipeline returned, a moment after Redis holds the keys
        writes = cache._metrics.cache_writes._value
        wait_for(lambda: writes.get() >= 2, message="the two writes counted")
        assert writes.get() == 2, "one write per symbol: the 100 ticks of each were coalesced"
    finally:
        cache.stop()
        client.close()


def test_older_ticks_never_replace_newer_ones(tasks) -> None:
    cache = TickerCache(None, tasks, ServiceMetrics())
    assert cache.offer(make_ticker(event_time=2_000))
    assert not cache.offer(make_ticker(event_time=1_000))
    assert not cache.offer(make_ticker(event_time=2_000))
    assert cache.latest("BTCUSDT").event_time == 2_000
    assert cache.status()[0] == CacheStatus.DISABLED


def test_latest_reads_redis_when_memory_has_nothing(tasks, private_redis) -> None:
    writer = make_cache(tasks, private_redis.port)
    writer.start()
    writer.offer(make_ticker(event_time=5_000))
    wait_for(lambda: redis.Redis(port=private_redis.port).exists("price:BTCUSDT"))
    writer.stop()
    reader = make_cache(tasks, private_redis.port)  # a restarted process: empty memory
    reader.start()
    try:
        assert reader.latest("BTCUSDT") == make_ticker(event_time=5_000)
        assert reader.latest("BTCUSDT", max_age=10) is None, "an old tick is not served as fresh"
        assert reader.latest("ETHUSDT") is None
    finally:
        reader.stop()


def test_redis_dying_and_returning(tasks, private_redis) -> None:
    cache = make_cache(tasks, private_redis.port)
    cache.start()
    try:
        assert cache.status()[0] == CacheStatus.CONNECTED
        private_redis.stop()
        cache.offer(make_ticker(event_time=10_000))
        wait_for(lambda: cache.status()[0] == CacheStatus.MEMORY, timeout=5)
        assert "unavailable" in cache.status()[1]
        assert cache.latest("BTCUSDT").event_time == 10_000, "memory keeps serving"
        cache.offer(make_ticker(event_time=11_000))
        private_redis.start()
        wait_for(lambda: cache.status()[0] == CacheStatus.CONNECTED, timeout=10)
        client = redis.Redis(port=private_redis.port)
        wait_for(lambda: client.exists("price:BTCUSDT"), timeout=5, message="latest tick rewritten after recovery")
        assert json.loads(client.get("price:BTCUSDT"))["event_time"] == 11_000
        client.close()
    finally:
        cache.stop()


def test_redis_down_at_start_never_blocks_offers(tasks) -> None:
    cache = make_cache(tasks, 1)  # nothing listens on port 1
    cache.start()
    try:
        assert cache.status()[0] == CacheStatus.MEMORY
        for i in range(10_000):
            cache.offer(make_ticker(event_time=i + 1))
        assert cache.latest("BTCUSDT").event_time == 10_000
    finally:
        cache.stop()


def test_an_idle_cache_notices_redis_going_away(tasks, private_redis) -> None:
    cache = make_cache(tasks, private_redis.port)
    cache.start()
    try:
        assert cache.status()[0] == CacheStatus.CONNECTED
        private_redis.stop()  # no tick is offered: only the idle ping can notice
        wait_for(lambda: cache.status()[0] == CacheStatus.MEMORY, timeout=5)
    finally:
        cache.stop()
