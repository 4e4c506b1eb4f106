"""Stores for the latest ticks: Redis (shared, survives restarts) and memory (always there).

RedisStore raises CacheUnavailable on any Redis failure; the writer decides what to do about it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache.codec import decode, encode, key_for
from streaming.core.errors import ProtocolError, StreamingError
from streaming.core.models import Ticker

__all__ = ["CacheUnavailable", "RedisStore"]

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 0.5  # seconds; a slow Redis must not hold a request or the writer for long


class CacheUnavailable(StreamingError):
    code = "CACHE_UNAVAILABLE"


class RedisStore:
    """``price:<SYMBOL>`` keys with a TTL, written in pipelined batches."""

    def __init__(self, host: str, port: int, db: int, ttl_seconds: float) -> None:
        self._ttl_ms = int(ttl_seconds * 1000)
        self._client = redis.Redis(
            host=host,
            port=port,
            db=db,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # fail fast: the writer has its own retry schedule
            health_check_interval=0,
        )
        self.address = f"{host}:{port}/{db}"

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise CacheUnavailable(f"Redis at {self.address} is not answering: {exc}") from exc

    def put_many(self, tickers: Iterable[Ticker]) -> int:
        pipe = self._client.pipeline(transaction=False)
        count = 0
        for ticker in tickers:
            pipe.set(key_for(ticker.market), encode(ticker), px=self._ttl_ms)
            count += 1
        if count:
            try:
                pipe.execute()
            except redis.RedisError as exc:
                raise CacheUnavailable(f"writing to Redis at {self.address} failed: {exc}") from exc
        return count

    def get(self, symbol: str) -> Ticker | None:
        try:
            raw = self._client.get(key_for(symbol))
        except redis.RedisError as exc:
            raise CacheUnavailable(f"reading from Redis at {self.address} failed: {exc}") from exc
        if raw is None:
            return None
        try:
            return decode(raw)
        except ProtocolError as exc:
            log.warning("ignoring unreadable cache entry %s: %s", key_for(symbol), exc)
            return None

    def close(self) -> None:
        self._client.close()
