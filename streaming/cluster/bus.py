"""ClusterRedis: every Redis command the cluster's roles send, and nothing else: the leader lock, fenced
publishes, node heartbeats, gateways' demand, and a pub/sub connection for a gateway.

Every Redis failure raises ClusterUnavailable; the callers decide what it means for their role.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache.history_store import META_KEY, stream_key
from cache.store import REDIS_TIMEOUT
from streaming.cluster import keys, scripts
from streaming.cluster.wire import notice_message
from streaming.core.errors import StreamingError

__all__ = ["ClusterRedis", "ClusterUnavailable", "Outgoing"]


class ClusterUnavailable(StreamingError):
    code = "CLUSTER_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One update for the PUBLISH script."""

    channel: str  # the channel's key, e.g. "trade:BTCUSDT"
    event: str
    data: str  # its compact wire JSON, without offset and epoch
    at_ms: int  # its event time
    order: int  # what orders it within its channel (streaming.core.models: ``order``)
    max_items: int  # the history's count retention
    published_us: int  # when the leader took it from the exchange
    notice: bool = False  # not an update: published as it is, with no offset and no history (wire.NOTICE)


class ClusterRedis:
    def __init__(self, host: str, port: int, db: int) -> None:
        self.db = db
        self.address = f"{host}:{port}/{db}"
        self._client = redis.Redis(
            host=host, port=port, db=db, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )
        self._acquire = self._client.register_script(scripts.ACQUIRE)
        self._renew = self._client.register_script(scripts.RENEW)
        self._resign = self._client.register_script(scripts.RESIGN)
        self._publish = self._client.register_script(scripts.PUBLISH)
        self._notice = self._client.register_script(scripts.NOTICE)
        self._host, self._port = host, port

    def _fail(self, what: str, exc: Exception) -> ClusterUnavailable:
        return ClusterUnavailable(f"{what} Redis at {self.address} failed: {exc}")

    # -- the leader lock --------------------------------------------------------------------------------------
    def acquire(self, node: str, ttl: float) -> str | None:
        """Take the lock under a new term if it is free; returns the token ``<node>:<term>``, or None."""
        try:
            token = self._acquire(keys=[keys.LEADER, keys.TERM], args=[node, int(ttl * 1000)])
        except redis.RedisError as exc:
            raise self._fail("taking the leader lock in", exc) from exc
        return token.decode() if token else None

    def renew(self, token: str, ttl: float) -> bool:
        try:
            return bool(self._renew(keys=[keys.LEADER], args=[token, int(ttl * 1000)]))
        except redis.RedisError as exc:
            raise self._fail("renewing the leader lock in", exc) from exc

    def resign(self, token: str) -> bool:
        try:
            return bool(self._resign(keys=[keys.LEADER], args=[token]))
        except redis.RedisError as exc:
            raise self._fail("releasing the leader lock in", exc) from exc

    def leader(self) -> str | None:
        """The current leader's token, if any."""
        try:
            raw = self._client.get(keys.LEADER)
        except redis.RedisError as exc:
            raise self._fail("reading the leader from", exc) from exc
        return raw.decode() if raw else None

    # -- publishing -------------------------------------------------------------------------------------------
    def publish(self, token: str, updates: Sequence[Outgoing], new_epoch: str) -> list[int]:
        """Run the PUBLISH script for each update, in order, in one round trip; returns each one's offset, or
        scripts.FENCED / scripts.REPEAT. ``new_epoch`` begins the history of a channel that has none.

        The scripts go by their SHA (EVALSHA), without redis-py's check that they are loaded before every
        pipeline (one more round trip each time); a Redis that does not know them (restarted) refuses every
        one of them with NOSCRIPT, so nothing ran: they are loaded and the batch sent again."""
        results = self._run_publish(token, updates, new_epoch)
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            try:
                for script in (self._publish, self._notice):
                    self._client.script_load(script.script)
            except redis.RedisError as exc:
                raise self._fail("loading the publish scripts into", exc) from exc
            results = self._run_publish(token, updates, new_epoch)
        offsets = []
        for result in results:
            if isinstance(result, redis.ConnectionError | redis.TimeoutError):
                raise self._fail("publishing updates to", result)
            # a script error: the stored stream disagrees with its position (written by something else)
            offsets.append(scripts.FAILED if isinstance(result, Exception) else int(result))
        return offsets

    def _run_publish(self, token: str, updates: Sequence[Outgoing], new_epoch: str) -> list[Any]:
        term = token.rpartition(":")[2]
        pipe = self._client.pipeline(transaction=False)
        for update in updates:
            topic = keys.topic(self.db, update.channel)
            if update.notice:
                pipe.evalsha(self._notice.sha, 1, keys.LEADER, token, topic,
                             notice_message(update.published_us, update.event, update.data))
                continue
            pipe.evalsha(self._publish.sha, 4, keys.LEADER, stream_key(update.channel), META_KEY, keys.ORDER,
                         token, update.channel, new_epoch, update.max_items, update.at_ms, update.order,
                         update.data, update.event, topic, update.published_us, term)
        try:
            return pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise self._fail("publishing updates to", exc) from exc

    def restart(self, channel: str) -> None:
        """Forget a channel's position: its next update begins a new epoch (its history has a hole that
        cannot be filled)."""
        try:
            self._client.hdel(META_KEY, channel)
        except redis.RedisError as exc:
            raise self._fail("restarting a history in", exc) from exc

    # -- nodes and demand -------------------------------------------------------------------------------------
    def heartbeat(self, node: str, state: dict[str, Any], ttl: float, demand: Sequence[str] | None = None) -> None:
        """Refresh this node's heartbeat and, for a gateway, replace its wanted channels; both lapse after
        ``ttl`` unless refreshed."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(keys.node_key(node), json.dumps(state, separators=(",", ":")), px=int(ttl * 1000))
        if demand is not None:
            key = keys.demand_key(node)
            pipe.delete(key)
            if demand:
                pipe.sadd(key, *demand)
                pipe.pexpire(key, int(ttl * 1000))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise self._fail("sending a heartbeat to", exc) from exc

    def forget(self, node: str) -> None:
        """A node stopping: its heartbeat and demand go at once instead of at their TTL."""
        try:
            self._client.delete(keys.node_key(node), keys.demand_key(node))
        except redis.RedisError as exc:
            raise self._fail("removing a node from", exc) from exc

    def demand(self) -> set[str]:
        """The channel keys wanted by every live gateway (their demand sets that have not lapsed)."""
        try:
            names = list(self._client.scan_iter(match=keys.DEMAND_PREFIX + "*", count=1000))
            if not names:
                return set()
            return {member.decode() for member in self._client.sunion(names)}
        except redis.RedisError as exc:
            raise self._fail("reading the gateways' demand from", exc) from exc

    def nodes(self) -> list[dict[str, Any]]:
        """Every live node's last heartbeat."""
        try:
            names = sorted(self._client.scan_iter(match=keys.NODE_PREFIX + "*", count=1000))
            values = self._client.mget(names) if names else []
        except redis.RedisError as exc:
            raise self._fail("reading the nodes from", exc) from exc
        nodes = []
        for raw in values:
            if raw:
                try:
                    nodes.append(json.loads(raw))
                except ValueError:
                    continue
        return nodes

    # -- a gateway's subscriptions ----------------------------------------------------------------------------
    def pubsub(self) -> Any:
        """A pub/sub connection of its own (redis-py's PubSub), with no timeout on reads: it waits for
        messages; a broken connection raises at once."""
        client = redis.Redis(host=self._host, port=self._port, db=self.db, socket_connect_timeout=REDIS_TIMEOUT,
                             socket_keepalive=True, retry=Retry(NoBackoff(), 0), health_check_interval=0)
        return client.pubsub(ignore_subscribe_messages=False)

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise self._fail("pinging", exc) from exc

    def close(self) -> None:
        self._client.close()
