"""Scale-out end to end: ingestors and gateways as real processes on one Redis of their own, real clients
(socket.io-client and python-socketio, the example clients, which reconnect and recover by themselves) through
the shipped nginx config, and faults: the leader killed or paused, a gateway killed, Redis paused.

What "every update exactly once, in order" means here, per client and channel: offsets go up by one from the
first update received to the last, in one epoch (no repeat, no hole, no reordering); the trades are exactly
the fake exchange's, by aggregate id, over that span; every ticker is one the exchange sent, in event order.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from streaming.gateway.openapi import openapi_document
from tests.e2e.clients import RecordingClient, refused_connection
from tests.e2e.cluster import Cluster
from tests.e2e.nginx import NginxProxy
from tests.e2e.process import ROOT, ServiceProcess, free_port, terminate
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

STREAM_OF = {"price_update": "ticker", "trade": "trade", "book_ticker": "book"}
EXAMPLES = {"node": ["node", "docs/examples/node-client.js"],
            "python": [sys.executable, "docs/examples/python-client.py"]}


class ExampleClient:
    """An example client as a process, its JSON lines in a file."""

    def __init__(self, kind: str, url: str, symbols: str, streams: str, out: Path) -> None:
        self.out = out
        self._file = open(out, "wb")
        self.proc = subprocess.Popen([*EXAMPLES[kind], "--url", url, "--symbols", symbols, "--streams", streams],
                                     cwd=ROOT, stdout=self._file, stderr=subprocess.STDOUT)

    def events(self) -> list[tuple[str, Any]]:
        events = []
        text = self.out.read_text()
        # the last line is only whole once its newline is written: the client may be writing it right now
        for line in text[: text.rfind("\n") + 1].splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                events.append((row["event"], row["data"]))
        return events

    def updates(self) -> list[tuple[str, dict[str, Any]]]:
        return [(event, data) for event, data in self.events() if event in STREAM_OF]

    def stop(self) -> None:
        terminate(self.proc)
        self._file.close()


def channels_of(updates: list[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for event, data in updates:
        by_channel.setdefault(f"{STREAM_OF[event]}:{data['symbol']}", []).append(data)
    return by_channel


def exchange_trades(fake: FakeBinance, symbol: str) -> list[int]:
    """The aggregate ids of every trade the fake exchange made of a symbol lately: those it streamed, and those
    its REST API serves (made while nobody was subscribed, e.g. during a take-over)."""
    rest = requests.get(f"{fake.rest_url}/fapi/v1/aggTrades", params={"symbol": symbol, "limit": 1000}, timeout=5)
    rest.raise_for_status()
    return sorted({row["a"] for row in fake.trades_sent(symbol)} | {row["a"] for row in rest.json()})


def assert_exactly_once_in_order(updates: list[tuple[str, dict[str, Any]]], fake: FakeBinance,
                                 label: str) -> dict[str, list[dict[str, Any]]]:
    by_channel = channels_of(updates)
    for key, items in by_channel.items():
        for before, after in pairwise(items):
            assert after["epoch"] == before["epoch"], f"{label} {key}: the epoch changed: {before} -> {after}"
            assert after["offset"] == before["offset"] + 1, (
                f"{label} {key}: offset {before['offset']} then {after['offset']}: a repeat, a hole or a reordering")
        kind, symbol = key.split(":")
        if kind == "trade":
            ids = [item["id"] for item in items]
            made = exchange_trades(fake, symbol)
            expected = [trade for trade in made if ids[0] <= trade <= ids[-1]]
            assert ids == expected, f"{label} {key}: trades differ from the exchange's ({len(ids)} vs {len(expected)})"
        elif kind == "ticker":
            times = [item["eventTime"] for item in items]
            assert times == sorted(set(times)), f"{label} {key}: tickers repeated or out of order"
            assert set(times) <= set(fake.ticker_event_times(symbol)), f"{label} {key}: a ticker never sent"
    return by_channel


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    exchange = FakeBinance(tick_interval=0.2).start()
    try:
        yield exchange
    finally:
        exchange.stop()


@pytest.fixture
def cluster(fake: FakeBinance, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(fake, tmp_path)
    try:
        yield made
    finally:
        broken = made.stop()
        assert not broken, broken[0][-5000:]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator:
    started: list[NginxProxy] = []

    def start(gateways: list[ServiceProcess]) -> NginxProxy:
        nginx = NginxProxy(free_port(), [gateway.port for gateway in gateways], tmp_path / f"nginx{len(started)}")
        started.append(nginx)
        return nginx.start()

    yield start
    for nginx in started:
        nginx.stop()


@pytest.fixture
def example_clients(tmp_path: Path) -> Iterator:
    made: list[ExampleClient] = []

    def start(kind: str, url: str, symbols: str = "BTCUSDT", streams: str = "ticker,trade,book") -> ExampleClient:
        client = ExampleClient(kind, url, symbols, streams, tmp_path / f"client-{len(made)}-{kind}.jsonl")
        made.append(client)
        return client

    yield start
    for client in made:
        client.stop()


def wait_for_updates(clients: list[ExampleClient], kinds: set[str], timeout: float = 20.0) -> None:
    wait_for(lambda: all(kinds <= {STREAM_OF[event] for event, _ in client.updates()} for client in clients),
             timeout=timeout, message="not every client receives every stream")


def counts(clients: list[ExampleClient]) -> list[int]:
    return [len(client.updates()) for client in clients]


def test_the_leader_killed_a_standby_leads_within_10s_and_every_client_gets_every_update_once_in_order(
        cluster: Cluster, fake: FakeBinance, proxy, example_clients) -> None:
    for _ in range(2):
        cluster.add_ingestor(LEADER_TTL="5", LEADER_RENEW_INTERVAL="1")
    gateways = [cluster.add_gateway() for _ in range(3)]
    first = cluster.wait_for_leader()
    nginx = proxy(gateways)
    clients = [example_clients(kind, nginx.url) for kind in ("node", "python") for _ in range(3)]
    direct = [example_clients("python", gateway.url) for gateway in gateways]  # one on every gateway, surely
    everyone = clients + direct
    wait_for_updates(everyone, {"ticker", "trade", "book"})
    assert all(cluster.stats(gateway)["connected_clients"] >= 1 for gateway in gateways)

    token = cluster.leader_token()
    killed_at = time.monotonic()
    Cluster.kill(first)
    second = cluster.wait_for_leader(timeout=12, other_than=token)
    took_over = time.monotonic() - killed_at
    assert second is not first and took_over < 10, f"a standby took {took_over:.1f}s to lead"
    before = counts(everyone)
    wait_for(lambda: all(now >= then + 20 for now, then in zip(counts(everyone), before)), timeout=20,
             message="updates did not resume on every client after the take-over")
    for client in everyone:
        by_channel = assert_exactly_once_in_order(client.updates(), fake, client.out.name)
        assert set(by_channel) == {"ticker:BTCUSDT", "trade:BTCUSDT", "book:BTCUSDT"}
    assert cluster.stats(second)["role"] == "ingest"
    term = int((cluster.leader_token() or "").rpartition(":")[2])
    for gateway in gateways:  # each reads the leader with its heartbeat, every second
        wait_for(lambda: requests.get(gateway.url + "/health", timeout=5).json()["cluster"]["leader"]  # noqa: B023
                 == {"node": second.env["NODE_ID"], "term": term}, timeout=3, message="/health names another leader")
    assert gateways[0].metric("websocket_streaming_cluster_leader_changes_total") >= 1


def test_a_gateway_killed_its_clients_reconnect_through_nginx_to_another_and_recover_what_they_missed(
        cluster: Cluster, fake: FakeBinance, proxy, example_clients) -> None:
    cluster.add_ingestor()
    gateways = [cluster.add_gateway(), cluster.add_gateway()]
    cluster.wait_for_leader()
    nginx = proxy(gateways)
    clients = [example_clients(kind, nginx.url, "BTCUSDT,ETHUSDT", "ticker,trade") for kind in ("node", "python")
               for _ in range(4)]
    wait_for_updates(clients, {"ticker", "trade"})
    victim = max(gateways, key=lambda gateway: cluster.stats(gateway)["connected_clients"])
    moved = cluster.stats(victim)["connected_clients"]
    assert moved >= 1
    survivor = next(gateway for gateway in gateways if gateway is not victim)
    Cluster.kill(victim)
    wait_for(lambda: cluster.stats(survivor)["connected_clients"] == len(clients), timeout=30,
             message="the killed gateway's clients did not come back through nginx")
    before = counts(clients)
    wait_for(lambda: all(now >= then + 10 for now, then in zip(counts(clients), before)), timeout=20,
             message="updates did not resume on every client")
    recovered = 0
    for client in clients:
        assert_exactly_once_in_order(client.updates(), fake, client.out.name)
        answers = [data for event, data in client.events() if event == "subscribed"]
        recovered += sum(1 for answer in answers[1:] if all(answer["recovered"].values()) and answer["recovered"])
        recovered_updates = [data for _, data in client.updates() if data.get("recovered")]
        if len(answers) > 1:  # it was on the killed gateway
            assert answers[-1]["recovered"] and all(answers[-1]["recovered"].values()), answers[-1]
            assert recovered_updates, f"{client.out.name}: nothing recovered after the reconnect"
    assert recovered == moved, f"{moved} clients moved, {recovered} recovered"


def test_a_dead_gateways_demand_lapses_and_its_upstream_streams_are_released_after_the_grace(
        cluster: Cluster, fake: FakeBinance, example_clients) -> None:
    cluster.add_ingestor(UNSUBSCRIBE_GRACE="1")
    keep, dies = cluster.add_gateway(), cluster.add_gateway(RECOVERY_GRACE="1")
    cluster.wait_for_leader()
    kept = example_clients("python", keep.url, "ETHUSDT", "ticker")
    lonely = example_clients("node", dies.url, "XRPUSDT", "ticker,trade,book")
    wait_for_updates([kept], {"ticker"})
    wait_for_updates([lonely], {"ticker", "trade", "book"})
    assert {"xrpusdt@ticker", "xrpusdt@aggTrade"} <= fake.subscribed_streams("market")
    assert "xrpusdt@bookTicker" in fake.subscribed_streams("public")
    with cluster.client() as client:
        assert client.smembers("cluster:demand:gateway-2") >= {b"ticker:XRPUSDT", b"trade:XRPUSDT", b"book:XRPUSDT"}
    Cluster.kill(dies)
    died = time.monotonic()
    wait_for(lambda: not {"xrpusdt@ticker", "xrpusdt@aggTrade"} & fake.subscribed_streams("market")
             and "xrpusdt@bookTicker" not in fake.subscribed_streams("public"), timeout=15,
             message="the dead gateway's streams were not released upstream")
    released = time.monotonic() - died
    # its demand lapses after CLUSTER_NODE_TTL (3 s), then the leader's grace (1 s) runs: not before
    assert released >= 3.0, f"released {released:.1f}s after the gateway died: before its demand lapsed"
    assert "ethusdt@ticker" in fake.subscribed_streams("market")  # the live gateway's demand stays
    assert cluster.stats(keep)["cluster"]["totals"]["gateways"] == 1


def test_a_stale_leader_paused_past_its_ttl_and_resumed_publishes_nothing(
        cluster: Cluster, fake: FakeBinance, example_clients) -> None:
    old = cluster.add_ingestor()
    cluster.wait_for_leader()
    cluster.add_ingestor()
    gateway = cluster.add_gateway()
    client = example_clients("python", gateway.url, "BTCUSDT", "ticker,trade")
    wait_for_updates([client], {"ticker", "trade"})
    old_token = cluster.leader_token()
    assert old_token is not None and old_token.startswith("ingest-1:")
    old_term = old_token.rpartition(":")[2].encode()
    Cluster.kill(old, signal.SIGSTOP)
    try:
        new = cluster.wait_for_leader(timeout=12, other_than=old_token)
        assert new is not old
        time.sleep(1.0)  # the new leader publishes; the paused one has trades and tickers waiting for it
    finally:
        Cluster.kill(old, signal.SIGCONT)
    assert old.proc is not None
    old.proc.wait(timeout=20)  # it notices it lost the lock and leaves, to start again as a standby
    assert "stops leading" in old.log()
    before = len(client.updates())
    wait_for(lambda: len(client.updates()) >= before + 10, timeout=10, message="updates stopped")
    with cluster.client() as redis_client:
        for key in (b"history:ticker:BTCUSDT", b"history:trade:BTCUSDT"):
            terms = [fields[b"l"] for _, fields in redis_client.xrange(key)]
            first_new = next(index for index, term in enumerate(terms) if term != old_term)
            assert old_term not in terms[first_new:], f"{key!r}: the stale leader wrote after its successor"
    assert_exactly_once_in_order(client.updates(), fake, "client")


def test_redis_paused_for_5s_gateways_degrade_and_nothing_is_repeated_when_it_returns(
        cluster: Cluster, fake: FakeBinance, example_clients) -> None:
    cluster.add_ingestor()
    cluster.add_ingestor()
    gateway = cluster.add_gateway()
    cluster.wait_for_leader()
    clients = [example_clients(kind, gateway.url, "BTCUSDT", "ticker,trade,book") for kind in ("node", "python")]
    wait_for_updates(clients, {"ticker", "trade", "book"})
    assert cluster.redis.proc is not None

    def degraded() -> bool:
        health = requests.get(gateway.url + "/health", timeout=5).json()
        return health["status"] != "healthy" and any("cluster" in reason for reason in health["reasons"])

    cluster.redis.proc.send_signal(signal.SIGSTOP)
    paused = time.monotonic()
    try:
        wait_for(degraded, timeout=4, message="/health did not say the cluster's Redis is unavailable")
        assert requests.get(gateway.url + "/price/BTCUSDT", timeout=5).status_code == 200  # from memory or REST
        time.sleep(max(0.0, 5.0 - (time.monotonic() - paused)))
    finally:
        cluster.redis.proc.send_signal(signal.SIGCONT)
    cluster.wait_for_leader(timeout=15)
    before = counts(clients)
    wait_for(lambda: all(now >= then + 20 for now, then in zip(counts(clients), before)), timeout=25,
             message="updates did not resume after Redis came back")
    wait_for(lambda: requests.get(gateway.url + "/health", timeout=5).json()["status"] == "healthy", timeout=10,
             message="the gateway did not become healthy again")
    for client in clients:
        assert_exactly_once_in_order(client.updates(), fake, client.out.name)


def test_a_quiet_stream_is_announced_to_the_clients_on_every_gateway_in_order_with_its_updates(
        cluster: Cluster, fake: FakeBinance) -> None:
    cluster.add_ingestor(STALE_TIMEOUT="2")
    gateways = [cluster.add_gateway(), cluster.add_gateway()]
    cluster.wait_for_leader()
    clients = [RecordingClient(gateway.url) for gateway in gateways]
    try:
        for client in clients:
            client.call("subscribe", {"symbols": ["SOLUSDT"], "streams": ["ticker"]})
            client.wait("price_update")
        fake.set_silent(True, symbols=["SOLUSDT"])
        for client in clients:
            client.wait("stream_status", lambda status: status["state"] == "stale", timeout=10)
        fake.set_silent(False)
        for client in clients:
            client.wait("stream_status", lambda status: status["state"] == "live", timeout=10)
            events = [(event, data) for event, data in client.events if event in ("price_update", "stream_status")]
            stale = next(i for i, (event, data) in enumerate(events) if event == "stream_status")
            live = next(i for i, (event, data) in enumerate(events) if event == "stream_status" and
                        data["state"] == "live")
            assert all(event == "price_update" for event, _ in events[:stale])
            assert events[stale][1]["symbol"] == "SOLUSDT" and stale < live
            # as from one process: the ticker that brings the stream back comes first, then "live"
            between = [event for event, _ in events[stale + 1:live]]
            assert between in ([], ["price_update"]), f"tickers while the stream was announced quiet: {between}"
    finally:
        for client in clients:
            client.close()


def test_every_nodes_health_ready_and_stats_conform_to_the_openapi_document(cluster: Cluster) -> None:
    leader = cluster.add_ingestor()
    cluster.wait_for_leader()
    standby = cluster.add_ingestor()
    gateway = cluster.add_gateway()
    schema = schemathesis.openapi.from_dict(openapi_document())
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for process in (leader, standby, gateway):
        wait_for(lambda: cluster.stats(process)["cluster"]["totals"]["gateways"] == 1, timeout=5)  # noqa: B023
        for path in ("/health", "/ready", "/stats"):
            response = requests.get(process.url + path, timeout=5)
            schema[path]["GET"].Case().validate_response(response, checks=checks)
    assert requests.get(standby.url + "/health", timeout=5).json()["dependencies"]["upstream"]["status"] == "standby"
    assert requests.get(standby.url + "/ready", timeout=5).status_code == 200
    assert requests.get(gateway.url + "/health", timeout=5).json()["upstream"]["source"] == "cluster"
    stats = cluster.stats(gateway)
    assert stats["role"] == "gateway" and stats["cluster"]["leader"]["node"] == "ingest-1"
    assert {node["node"] for node in stats["cluster"]["nodes"]} == {"ingest-1", "ingest-2", "gateway-1"}
    refusal = refused_connection(leader.url)  # an ingestor refuses clients, saying where to go
    assert refusal["data"]["code"] == "WRONG_ROLE" and "gateway" in refusal["message"], refusal
