"""The cluster's Redis side against a real redis-server of the test's own: the leader lock and its terms, the
fenced publish script, the publisher's lease, a gateway's feed (seeding, gaps, repeats) and the gateways'
demand."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from cache.history_store import RedisHistory
from metrics.collectors import ServiceMetrics
from streaming.cluster import keys, scripts
from streaming.cluster.bus import ClusterRedis, Outgoing
from streaming.cluster.election import Election
from streaming.cluster.feed import GatewayFeed
from streaming.cluster.membership import Membership
from streaming.cluster.publisher import Publisher
from streaming.cluster.wire import parse_message
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.history import Position, Retention
from streaming.core.models import Trade
from streaming.core.packets import packet
from tests.helpers import wait_for
from tests.integration.conftest import ThreadTasks
from tests.redis_server import RedisProcess

TRADES = Channel(BINANCE, Kind.TRADE, "BTCUSDT")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def bus(server: RedisProcess) -> Iterator[ClusterRedis]:
    client = ClusterRedis("127.0.0.1", server.port, 0)
    yield client
    client.close()


@pytest.fixture
def raw(server: RedisProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=server.port, db=0)
    yield client
    client.close()


def trade(trade_id: int) -> Outgoing:
    """A trade of now: a fixed time would fall out of the history's max age as the calendar moves on."""
    wire = {"symbol": "BTCUSDT", "exchange": "binance", "id": trade_id, "price": 86000.5}
    now_ms = int(time.time() * 1000)
    return Outgoing(TRADES.key, "trade", json.dumps(wire, separators=(",", ":")), now_ms + trade_id, trade_id, 1000,
                    now_ms * 1000)


def listen(server: RedisProcess, channel: Channel = TRADES) -> redis.client.PubSub:
    pubsub = redis.Redis(host="127.0.0.1", port=server.port).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.topic(0, channel.key))
    wait_for(lambda: pubsub.get_message(timeout=0.1) is None and pubsub.subscribed, timeout=5)
    return pubsub


def messages(pubsub: redis.client.PubSub, wait: float = 0.3) -> list:
    got, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            got.append(parse_message(message["data"]))
    return got


# -- the lock and the publish script --------------------------------------------------------------------------
def test_the_lock_goes_to_one_node_at_a_time_each_time_under_a_higher_term(bus: ClusterRedis) -> None:
    first = bus.acquire("a", 5.0)
    assert first == "a:1"
    assert bus.acquire("b", 5.0) is None  # held
    assert bus.renew(first, 5.0) and not bus.renew("b:1", 5.0)
    assert bus.resign(first) and bus.leader() is None
    assert bus.acquire("b", 5.0) == "b:2"
    assert not bus.renew(first, 5.0), "the old token must not renew the new leader's lock"


def test_the_lock_lapses_after_its_ttl_without_renewals(bus: ClusterRedis) -> None:
    assert bus.acquire("a", 0.3) == "a:1"
    wait_for(lambda: bus.leader() is None, timeout=3)
    assert bus.acquire("b", 5.0) == "b:2"


def test_a_publish_numbers_the_update_appends_it_and_publishes_the_packet_in_one_step(
        bus: ClusterRedis, server: RedisProcess, raw: redis.Redis) -> None:
    token = bus.acquire("a", 5.0)
    assert token is not None
    pubsub = listen(server)
    assert bus.publish(token, [trade(10), trade(11)], "e1") == [1, 2]
    got = messages(pubsub)
    assert [(message.offset, message.epoch) for message in got] == [(1, "e1"), (2, "e1")]
    assert got[0].packet == packet("trade", trade(10).data, 1, "e1")
    rows = raw.xrange("history:trade:BTCUSDT")
    assert [(row_id, fields[b"d"].decode(), fields[b"l"]) for row_id, fields in rows] == [
        (b"1-0", trade(10).data, b"1"), (b"2-0", trade(11).data, b"1")]
    assert raw.hget("history:meta", TRADES.key) == b"e1:2"
    assert bus.publish(token, [trade(11), trade(9)], "e2") == [scripts.REPEAT, scripts.REPEAT]
    assert messages(pubsub) == [] and raw.xlen("history:trade:BTCUSDT") == 2


def test_a_publish_under_a_token_that_is_not_the_locks_writes_and_publishes_nothing(
        bus: ClusterRedis, server: RedisProcess, raw: redis.Redis) -> None:
    old = bus.acquire("a", 0.3)
    assert old is not None and bus.publish(old, [trade(1)], "e1") == [1]
    wait_for(lambda: bus.leader() is None, timeout=3)  # paused past its TTL
    new = bus.acquire("b", 5.0)
    assert new is not None
    pubsub = listen(server)
    # the stale leader resumes with a newer trade than anything published: only the fence stops it
    assert bus.publish(old, [trade(5)], "e9") == [scripts.FENCED]
    assert messages(pubsub) == [] and raw.xlen("history:trade:BTCUSDT") == 1
    assert bus.publish(new, [trade(2)], "e9") == [2], "the new leader carries on the offsets and the epoch"
    assert [(message.offset, message.epoch) for message in messages(pubsub)] == [(2, "e1")]


# -- election and publisher -----------------------------------------------------------------------------------
def test_a_standby_leads_once_the_leaders_lock_lapses(bus: ClusterRedis, tasks: ThreadTasks) -> None:
    elected: list[str] = []
    deposed: list[str] = []
    a = Election(bus, "a", 1.0, 0.2, tasks, elected.append, deposed.append, lambda name: None)
    b = Election(bus, "b", 1.0, 0.2, tasks, elected.append, deposed.append, lambda name: None)
    a.start()
    wait_for(lambda: elected == ["a:1"], timeout=3)
    b.start()
    time.sleep(1.5)
    assert elected == ["a:1"] and a.lease_valid() and not b.lease_valid()
    a._task.stop()  # a dies: no more renewals, and no resignation
    died = time.monotonic()
    wait_for(lambda: elected == ["a:1", "b:2"], timeout=3)
    assert time.monotonic() - died < 1.0 + 0.2 + 0.5
    assert not a.lease_valid(), "a's own lease ran out with the lock's"
    b.stop()
    assert bus.leader() is None, "a stopping leader releases the lock"
    assert deposed == []


def test_a_leader_that_finds_the_lock_taken_is_deposed_once(bus: ClusterRedis, tasks: ThreadTasks) -> None:
    deposed: list[str] = []
    a = Election(bus, "a", 5.0, 0.1, tasks, lambda token: None, deposed.append, lambda name: None)
    a.start()
    wait_for(a.lease_valid, timeout=3)
    bus._client.set(keys.LEADER, "b:7")  # another node took it (a's renewals were too late)
    wait_for(lambda: deposed, timeout=3)
    time.sleep(0.3)
    assert len(deposed) == 1 and "no longer ours" in deposed[0] and not a.lease_valid()
    a.stop()
    assert bus.leader() == "b:7", "a deposed leader must not release another's lock"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_publisher_sends_nothing_once_its_own_lease_ran_out(bus: ClusterRedis, raw: redis.Redis,
                                                                tasks: ThreadTasks) -> None:
    clock = Clock()
    election = Election(bus, "a", 5.0, 1.0, tasks, lambda token: None, lambda reason: None, lambda name: None,
                        monotonic=clock)
    election._round()  # leads from clock.now for 5 s
    metrics = ServiceMetrics()
    publisher = Publisher(bus, election, {kind: 1000 for kind in Kind}, tasks, metrics)
    update = Trade("BTCUSDT", 1, "1.5", "2", False, 1, 1, 1796390406000, 1796390406000)
    publisher.offer(update, update.to_wire())
    publisher._round()
    assert raw.xlen("history:trade:BTCUSDT") == 1
    clock.now += 5.0  # paused: the lock is still in Redis (no time passed there), but this lease is over
    later = Trade("BTCUSDT", 2, "1.5", "2", False, 2, 2, 1796390406001, 1796390406001)
    publisher.offer(later, later.to_wire())
    publisher._round()
    assert raw.xlen("history:trade:BTCUSDT") == 1
    assert metrics.published.labels("dropped")._value.get() == 1
    assert metrics.published.labels("published")._value.get() == 1


# -- a gateway's feed -----------------------------------------------------------------------------------------
class Room:
    """The fan-out's side of a feed: what it writes, to whom."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def emit(self, texts: Sequence[str], room: str, coalesce: bool) -> tuple[int, int]:
        self.sent.extend((room, text) for text in texts)
        return len(texts), 0

    def offsets(self, room: str = TRADES.room) -> list[int]:
        return [json.loads(text[1:])[1]["offset"] for to, text in self.sent if to == room]


@pytest.fixture
def feed(server: RedisProcess, bus: ClusterRedis, tasks: ThreadTasks) -> Iterator[tuple[GatewayFeed, Room]]:
    room = Room()
    history = RedisHistory("127.0.0.1", server.port, 0)
    made = GatewayFeed(bus, history, room.lock, room.emit, lambda channel: 1,
                       {kind: Retention(1000, 3600.0) for kind in Kind}, 50, 1.0, 10.0, tasks, ServiceMetrics())
    made.start()
    try:
        yield made, room
    finally:
        made.stop()
        history.close()


def test_a_feed_starts_from_the_stored_history_then_forwards_each_update_once_and_fills_gaps(
        bus: ClusterRedis, feed: tuple[GatewayFeed, Room]) -> None:
    gateway, room = feed
    token = bus.acquire("a", 5.0)
    assert token is not None
    bus.publish(token, [trade(i) for i in range(1, 4)], "e1")  # before the gateway wanted the channel
    gateway.prepare([TRADES])
    gateway.want(TRADES)
    assert gateway.position(TRADES) == Position(3, "e1")
    recovery = gateway.recover(TRADES, Position(1, "e1"), 10)
    assert recovery.recovered and [entry.offset for entry in recovery.entries] == [2, 3]
    bus.publish(token, [trade(4)], "e1")
    wait_for(lambda: room.offsets() == [4], timeout=3)
    silent = ClusterRedis("127.0.0.1", bus._port, 0)
    silent.db = 99  # publishes into the same history on a channel nobody here listens to: a lost message
    silent.publish(token, [trade(5), trade(6)], "e1")
    bus.publish(token, [trade(7)], "e1")
    wait_for(lambda: room.offsets() == [4, 5, 6, 7], timeout=3, message=f"got {room.offsets()}")
    sent = [text for _, text in room.sent]
    assert sent[1] == packet("trade", trade(5).data, 5, "e1"), "a filled update is the packet the leader built"
    for again in (6, 7):  # an older one, and the last one forwarded
        repeat = packet("trade", trade(again).data, again, "e1")
        bus._client.publish(keys.topic(0, TRADES.key), f"{again} e1 1 {repeat}")
    bus.publish(token, [trade(8)], "e1")
    wait_for(lambda: room.offsets()[-1] == 8, timeout=3)
    assert room.offsets() == [4, 5, 6, 7, 8], "the repeats of 6 and 7 were dropped"
    silent.close()


def test_a_feed_catches_up_after_its_pubsub_connection_broke(bus: ClusterRedis, raw: redis.Redis,
                                                             feed: tuple[GatewayFeed, Room]) -> None:
    gateway, room = feed
    token = bus.acquire("a", 5.0)
    assert token is not None
    bus.publish(token, [trade(1)], "e1")
    gateway.prepare([TRADES])
    gateway.want(TRADES)
    for client in raw.client_list(_type="pubsub"):
        raw.client_kill_filter(_id=client["id"])
    bus.publish(token, [trade(2), trade(3)], "e1")  # while the gateway reconnects
    wait_for(lambda: room.offsets() == [2, 3], timeout=5, message=f"got {room.offsets()}")
    assert gateway.connected


def test_a_channel_no_client_wants_any_more_is_unsubscribed_after_its_grace(feed: tuple[GatewayFeed, Room]) -> None:
    gateway, _ = feed
    gateway.prepare([TRADES])
    gateway.want(TRADES)
    assert gateway.channels() == [TRADES.key]
    gateway.release(TRADES, grace=0.2)
    wait_for(lambda: gateway.channels() == [], timeout=3)


# -- demand and heartbeats -----------------------------------------------------------------------------------
def test_the_leader_sees_the_union_of_live_gateways_demand_and_a_dead_ones_lapses(
        bus: ClusterRedis, tasks: ThreadTasks) -> None:
    one = Membership(bus, "gw-1", 0.6, lambda: {"role": "gateway", "connected_clients": 2}, tasks,
                     ServiceMetrics(), demand=lambda: ["ticker:BTCUSDT", "trade:BTCUSDT"])
    two = Membership(bus, "gw-2", 0.6, lambda: {"role": "gateway", "connected_clients": 3}, tasks,
                     ServiceMetrics(), demand=lambda: ["ticker:BTCUSDT", "book:ETHUSDT"])
    one.start()
    two.start()
    wait_for(lambda: bus.demand() == {"ticker:BTCUSDT", "trade:BTCUSDT", "book:ETHUSDT"}, timeout=3)
    wait_for(lambda: one.view()["totals"]["connected_clients"] == 5, timeout=3)
    two._task.stop()  # dies: its heartbeat and demand are not refreshed
    wait_for(lambda: bus.demand() == {"ticker:BTCUSDT", "trade:BTCUSDT"}, timeout=3)
    wait_for(lambda: [node["node"] for node in one.view()["nodes"]] == ["gw-1"], timeout=3)
    one.stop()
    assert bus.demand() == set(), "a stopping gateway takes its demand away at once"
