"""docs/deploy/nginx.conf end to end: Debian's nginx running the shipped config (only its ports rewritten) in front of
two ordinary service processes ("gateways") sharing the fake exchange and Redis. WebSocket-only clients spread over
both gateways; polling sessions, and their upgrade to a WebSocket, stay on the gateway that holds them."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.clients import RecordingClient
from tests.e2e.nginx import DEPLOY_CONFIG, NginxProxy, check_config
from tests.e2e.node_client import NodeClient
from tests.e2e.process import ServiceProcess, free_port
from tests.helpers import wait_for

GATEWAYS = 2
# One line of the shipped log_format `gateway`: the request and where it went.
ACCESS_LINE = re.compile(r'"(?P<method>\S+) (?P<uri>\S+) [^"]*" (?P<status>\d+) .* group=(?P<group>\S+) '
                         r'upstream=(?P<upstream>.*)$')
PythonClients = Callable[[list[str]], RecordingClient]
NodeClients = Callable[[list[str]], NodeClient]


@pytest.fixture
def gateways(start_service: Callable[..., ServiceProcess]) -> list[ServiceProcess]:
    return [start_service() for _ in range(GATEWAYS)]


@pytest.fixture
def proxy(gateways: list[ServiceProcess], tmp_path: Path) -> Iterator[NginxProxy]:
    nginx = NginxProxy(free_port(), [gateway.port for gateway in gateways], tmp_path / "nginx").start()
    yield nginx
    assert nginx.stop() == 0, nginx.logs()
    assert not re.search(r"\[(emerg|crit)\]", nginx.error_log()), nginx.error_log()


@pytest.fixture
def python_client(proxy: NginxProxy) -> Iterator[PythonClients]:
    """Factory: python_client(transports) -> a RecordingClient connected through the proxy (closed at teardown)."""
    made: list[RecordingClient] = []

    def connect(transports: list[str]) -> RecordingClient:
        made.append(RecordingClient(proxy.url, transports=transports))
        return made[-1]

    yield connect
    for client in made:
        client.close()


@pytest.fixture
def node_client(proxy: NginxProxy) -> Iterator[NodeClients]:
    """Factory: node_client(transports) -> a socket.io-client process connecting through the proxy (stopped at
    teardown, where it must exit 0: it never lost its connection)."""
    made: list[NodeClient] = []

    def start(transports: list[str]) -> NodeClient:
        made.append(NodeClient(proxy.url, transports))
        return made[-1]

    yield start
    for client in made:
        assert client.close() == 0, (client.lines[-5:], client.stderr)


def connected_clients(gateway: ServiceProcess) -> int:
    return int(gateway.get("/stats").json()["data"]["connected_clients"])


def socketio_requests(proxy: NginxProxy, transport: str) -> list[re.Match[str]]:
    """The access log's lines of /socket.io/ requests with `transport`, as they finished."""
    lines = (ACCESS_LINE.search(line) for line in proxy.access_log().splitlines())
    return [m for m in lines if m and m["uri"].startswith("/socket.io/") and f"transport={transport}" in m["uri"]]


def test_the_shipped_config_passes_nginx_t_as_it_is(tmp_path: Path) -> None:
    checked = check_config(DEPLOY_CONFIG, tmp_path / "prefix")
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr


def test_websocket_clients_spread_over_both_gateways(proxy: NginxProxy, gateways: list[ServiceProcess],
                                                     python_client: PythonClients, node_client: NodeClients) -> None:
    pythons = [python_client(["websocket"]) for _ in range(4)]
    nodes = [node_client(["websocket"]) for _ in range(2)]
    for client in pythons:
        client.emit("subscribe", {"symbols": ["BTCUSDT"]})
    for client in pythons:
        assert {u["symbol"] for u in client.wait("price_update", count=2)} == {"BTCUSDT"}
    for node in nodes:
        updates = node.wait_ready()
        assert {(u["transport"], u["data"]["symbol"]) for u in updates} == {("websocket", "BTCUSDT")}
    counts = [connected_clients(gateway) for gateway in gateways]
    assert all(counts) and sum(counts) == len(pythons) + len(nodes), f"connected clients per gateway: {counts}"
    for client in pythons:
        client.close()
    # a WebSocket is logged when it closes: the Python ones went to the least_conn group, on both gateways
    wait_for(lambda: len(socketio_requests(proxy, "websocket")) >= len(pythons),
             message=f"the closed WebSockets in the access log: {proxy.access_log()}")
    finished = socketio_requests(proxy, "websocket")
    assert {m["group"] for m in finished} == {"gateways_any"} and {m["status"] for m in finished} == {"101"}
    assert {m["upstream"] for m in finished} == {f"127.0.0.1:{gateway.port}" for gateway in gateways}


def test_polling_sessions_stay_on_the_gateway_that_holds_them(proxy: NginxProxy, gateways: list[ServiceProcess],
                                                              python_client: PythonClients,
                                                              node_client: NodeClients) -> None:
    upgrading = python_client(["polling", "websocket"])  # python-socketio's default: polling, then a WebSocket
    wait_for(lambda: upgrading.sio.transport() == "websocket", timeout=10,
             message="python-socketio's upgrade from polling to a WebSocket through the proxy")
    polling = node_client(["polling"])
    upgrading_node = node_client(["polling", "websocket"])
    upgrading.emit("subscribe", {"symbols": ["BTCUSDT"]})
    assert {u["symbol"] for u in upgrading.wait("price_update", count=3)} == {"BTCUSDT"}
    assert {u["transport"] for u in polling.wait_ready()} == {"polling"}
    assert upgrading_node.wait_ready()[-1]["transport"] == "websocket"
    # Every client here comes from 127.0.0.1, so ip_hash sends every session to the same gateway; the other one
    # never saw any. Without stickiness a session's next request would reach a gateway that does not know it.
    counts = sorted(connected_clients(gateway) for gateway in gateways)
    assert counts == [0, 3], f"connected clients per gateway: {counts}"
    polls = socketio_requests(proxy, "polling")
    assert polls and {m["group"] for m in polls} == {"gateways_sticky"} and {m["status"] for m in polls} == {"200"}
    (gateway,) = {m["upstream"] for m in polls}
    # the upgrade carries the session's sid: the sticky group too, to the same gateway (logged once it closes)
    upgrading.close()
    (upgrade,) = wait_for(lambda: socketio_requests(proxy, "websocket"), message="the upgrade in the access log")
    assert "sid=" in upgrade["uri"] and upgrade["status"] == "101", upgrade.group(0)
    assert (upgrade["group"], upgrade["upstream"]) == ("gateways_sticky", gateway), upgrade.group(0)


def test_http_routes_answer_through_the_proxy(proxy: NginxProxy, gateways: list[ServiceProcess]) -> None:
    health = requests.get(proxy.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["service"] == "websocket-streaming", health.text
    assert health.json()["port"] in {gateway.port for gateway in gateways}
    price = requests.get(proxy.url + "/price/BTCUSDT", timeout=10)
    assert price.status_code == 200 and price.json()["data"]["symbol"] == "BTCUSDT", price.text
    # plain requests go to the least_conn group: both gateways answer in turn
    ports: set[int] = set()

    def both_answered() -> bool:
        ports.add(requests.get(proxy.url + "/stats", timeout=10).json()["data"]["port"])
        return ports == {gateway.port for gateway in gateways}

    wait_for(both_answered, message=f"/stats from both gateways; got {ports}")


def test_a_stopped_gateway_is_skipped(proxy: NginxProxy, gateways: list[ServiceProcess],
                                      python_client: PythonClients) -> None:
    # stop the gateway that ip_hash picks for 127.0.0.1, so that the sticky group has to move too (a probe that
    # upgrades: under gevent a polling-only python-socketio client takes a ping interval, 25 s, to disconnect)
    probe = python_client(["polling", "websocket"])
    (gone,) = [gateway for gateway in gateways if connected_clients(gateway) == 1]
    (alive,) = [gateway for gateway in gateways if gateway is not gone]
    probe.close()
    gone.stop()
    # a refused connect is retried on the next gateway (proxy_next_upstream error), then the dead one is skipped
    for _ in range(4):
        response = requests.get(proxy.url + "/health", timeout=10)
        assert response.status_code == 200 and response.json()["port"] == alive.port, response.text
    moved = [python_client(["websocket"]), python_client(["websocket"]), python_client(["polling", "websocket"])]
    moved[-1].emit("subscribe", {"symbols": ["BTCUSDT"]})
    moved[-1].wait("price_update")
    assert connected_clients(alive) == len(moved)
    assert "connect() failed (111: Connection refused)" in proxy.error_log()
