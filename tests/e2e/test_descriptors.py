"""File descriptors under attack: a low open-files limit, idle connections that never finish their headers, and
running out of descriptors altogether. The service must keep serving everyone else, and come back by itself."""
from __future__ import annotations

import resource
import shutil
import socket
import subprocess
import time

import pytest
import requests
import websocket

from tests.e2e.clients import RecordingClient
from tests.e2e.hog import Hog
from tests.helpers import wait_for

LIMIT = 1200  # the service's open-files limit in these tests (prlimit --nofile)
PRLIMIT = shutil.which("prlimit") or "prlimit"  # util-linux, on every Debian


@pytest.fixture(autouse=True)
def enough_descriptors_for_the_hogs() -> None:
    """The hogs open over a thousand sockets in this process: raise its own soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * LIMIT
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.fail(f"the test process may open at most {hard} files; these tests need {wanted} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


def metric(service, name: str, **labels: str) -> float:
    return service.metric(f"websocket_streaming_{name}", **labels)


def health_answers(url: str, within: float = 1.5) -> bool:
    try:
        return requests.get(url + "/health", timeout=within).status_code == 200
    except requests.RequestException:
        return False


def prices(client: RecordingClient) -> int:
    return len(client.received("price_update"))


def test_a_low_limit_is_raised_and_max_connections_fitted_to_it(start_service) -> None:
    service = start_service(prefix=(PRLIMIT, f"--nofile=1024:{LIMIT}"))
    assert metric(service, "open_files_limit") == LIMIT
    lines = [line for line in service.log().splitlines() if "open-files limit" in line]
    assert len(lines) == 1, lines
    assert f"open-files limit {LIMIT} (raised from 1024): MAX_CONNECTIONS lowered from 20000 to 880" in lines[0]
    assert "568 TCP connections per address" in lines[0]  # half of what is left after the reserve


def test_a_limit_too_low_for_any_client_refuses_to_start(start_service) -> None:
    service = start_service(wait_ready=False, prefix=(PRLIMIT, "--nofile=200"))
    assert service.proc.wait(timeout=20) == 1
    assert "cannot start: the open-files limit 200 leaves room for 0 clients; raise it to at least 336" in service.log()


def test_a_hog_on_one_address_cannot_starve_the_others(start_service, fake_binance) -> None:
    """Idle connections from 127.0.0.2 that never finish their headers: 127.0.0.1 keeps being served, during the
    attack and afterwards; the hog holds at most its cap, and its connections are closed at the header deadline."""
    cap = 300
    service = start_service(prefix=(PRLIMIT, f"--nofile={LIMIT}"), HTTP_HEADER_TIMEOUT="3",
                            MAX_TCP_CONNECTIONS_PER_IP=str(cap))
    watcher = RecordingClient(service.url)
    hog = Hog("127.0.0.2", service.port, 3 * cap)
    newcomer = None
    try:
        watcher.emit("subscribe", {"symbols": ["BTCUSDT"]})
        watcher.wait("price_update")
        hog.run_for(10)
        held_most = 0
        answered = 0
        end = time.monotonic() + 8
        while time.monotonic() < end:
            assert health_answers(service.url), "/health from 127.0.0.1 went unanswered during the attack"
            answered += 1
            held_most = max(held_most, len(hog))
            if newcomer is None and len(hog) >= cap // 2:
                newcomer = RecordingClient(service.url)  # connecting in the middle of the attack works too
                newcomer.emit("subscribe", {"symbols": ["ETHUSDT"]})
            time.sleep(0.2)
        assert held_most >= cap // 2, f"the hog never got going ({held_most} connections open at most)"
        assert newcomer is not None
        newcomer.wait("price_update", timeout=5)
        before = prices(watcher)
        wait_for(lambda: prices(watcher) > before, timeout=5, message="prices to the watcher during the attack")
        assert metric(service, "tcp_connections") <= cap + 4  # the hog's cap, the two clients, this scrape
        assert metric(service, "tcp_refusals_total", reason="per_address") > 0
        assert metric(service, "http_header_timeouts_total") > 0
    finally:
        hog.stop()
    assert hog.closed_by_server > cap, "the service closed too few of the hog's connections"
    wait_for(lambda: metric(service, "tcp_connections") <= 4, timeout=5, message="the hog's connections to go")
    before = prices(watcher)
    wait_for(lambda: prices(watcher) > before, timeout=5, message="prices after the attack")
    log = service.log()
    assert log.count("closing TCP connections from 127.0.0.2 beyond 300 per address") == 1, log
    assert log.count("closing HTTP connections that sent no complete request headers within 3s") == 1, log
    watcher.close()
    newcomer.close()


def test_running_out_of_descriptors_pauses_accepting_and_heals(start_service, fake_binance) -> None:
    """The process reaches its open-files limit (lowered under the running service to 300: the descriptors went
    elsewhere). accept() fails with EMFILE: the server pauses and retries rather than dying, logs it once, counts
    it, keeps streaming to connected clients, and accepts again once descriptors are free."""
    service = start_service(prefix=(PRLIMIT, f"--nofile={LIMIT}"), HTTP_HEADER_TIMEOUT="120")
    watcher = RecordingClient(service.url)
    watcher.emit("subscribe", {"symbols": ["BTCUSDT"]})
    watcher.wait("price_update")
    subprocess.run([PRLIMIT, "--pid", str(service.proc.pid), f"--nofile=300:{LIMIT}"], check=True)
    hogs = [Hog(f"127.0.0.{n}", service.port, 200).run_for(20) for n in (2, 3)]
    try:
        wait_for(lambda: "cannot accept connections: EMFILE" in service.log(), timeout=15,
                 message="the service to run out of descriptors")
        assert not health_answers(service.url, within=1.0)  # nothing left to answer with: that is the point
        before = prices(watcher)
        wait_for(lambda: prices(watcher) > before, timeout=5, message="prices to connected clients meanwhile")
    finally:
        for hog in hogs:
            hog.stop()
    wait_for(lambda: health_answers(service.url), timeout=5, message="/health once descriptors are free")
    newcomer = RecordingClient(service.url)
    newcomer.emit("subscribe", {"symbols": ["ETHUSDT"]})
    newcomer.wait("price_update", timeout=5)
    assert metric(service, "accept_errors_total", error="EMFILE") > 0
    log = service.log()
    assert log.count("cannot accept connections: EMFILE") == 1, log
    assert log.count("accepting connections again after") == 1, log
    watcher.close()
    newcomer.close()


def test_headers_have_a_deadline_and_what_follows_them_does_not(start_service) -> None:
    """A connection that does not finish its request headers within HTTP_HEADER_TIMEOUT is closed; headers that
    trickle in but finish in time are served; an idle WebSocket (past its headers long ago) stays open."""
    service = start_service(HTTP_HEADER_TIMEOUT="1")
    slow = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    trickle = socket.create_connection(("127.0.0.1", service.port), timeout=5)
    for piece in (b"GET /health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"Connection: close\r\n", b"\r\n"):
        trickle.sendall(piece)
        time.sleep(0.2)
    assert trickle.recv(64).startswith(b"HTTP/1.1 200"), "headers finished in time must be served"
    trickle.close()
    ws = websocket.create_connection(service.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=5)
    assert ws.recv().startswith("0")
    ws.send("40")
    assert ws.recv().startswith("40")
    answer = slow.recv(4096)  # blocks until the service ends the slow connection
    waited = time.monotonic() - started
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer  # closed (eventlet) or 400 (gevent)
    assert slow.recv(4096) == b""
    assert 1.0 <= waited < 2.5, f"closed after {waited:.2f}s; HTTP_HEADER_TIMEOUT is 1s"
    slow.close()
    time.sleep(1.5)  # the WebSocket idles past the header deadline
    ws.send('42["subscribe",{"symbols":["BTCUSDT"]}]')
    wait_for(lambda: "subscribed" in ws.recv(), timeout=5, message="the idle WebSocket to still be served")
    ws.close()
    assert metric(service, "http_header_timeouts_total") == 1
