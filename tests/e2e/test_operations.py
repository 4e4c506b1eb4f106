"""Operating the service: graceful shutdown, readiness and health, logs, version, startup errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests

from cache.codec import decode, key_for
from streaming.runtime.version import VERSION
from tests.e2e.clients import RecordingClient, refused_connection
from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.fakes.proxy import FreezableProxy
from tests.helpers import wait_for
from tests.metrics_samples import metric_value, samples_of

ASYNC_MODE = os.environ.get("ASYNC_MODE", "eventlet")


def terminate(service: ServiceProcess, signum: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
    """Send a signal and wait for the exit: (exit status, seconds it took)."""
    assert service.proc is not None
    started = time.monotonic()
    service.proc.send_signal(signum)
    status = service.proc.wait(timeout=timeout)
    return status, time.monotonic() - started


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_tells_clients_closes_upstream_and_flushes_the_cache(
    start_service, fake_binance: FakeBinance, clean_redis: redis.Redis, signum: int
) -> None:
    service = start_service(SHUTDOWN_TIMEOUT="5")
    client = RecordingClient(service.url)
    try:
        client.call("subscribe", {"symbols": ["BTCUSDT", "XRPUSDT"]})
        client.wait("price_update", lambda d: d["symbol"] == "XRPUSDT", count=3)
        status, took = terminate(service, signum)
        name = signal.Signals(signum).name
        assert status == 0, service.log()
        assert took < 5.0, f"shutdown took {took:.2f}s"
        notice = client.wait("server_shutdown", timeout=2)[0]
        assert notice["reason"] == name and notice["reconnect"] is True and notice["message"]
        # server_shutdown is the last thing the client got: no update after it
        assert [event for event, _ in client.events][-1] == "server_shutdown"
        wait_for(lambda: not client.sio.connected, timeout=3, message="client still connected after the exit")
    finally:
        client.close()
    log = service.log()
    assert f"{name} received: shutting down" in log and "shutdown complete" in log
    # the upstream connection was closed with a close frame, not dropped
    closed = [conn for conn in fake_binance.connections() if not conn.open]
    assert closed and all(conn.close_code == 1000 for conn in closed), closed
    # the cache writer flushed the newest tick it had: Redis holds what the client saw last
    last_seen = max(d["eventTime"] for d in client.received("price_update", lambda d: d["symbol"] == "XRPUSDT"))
    cached = decode(clean_redis.get(key_for("XRPUSDT")))
    assert cached.event_time >= last_seen


def silent_polling_session(url: str) -> str:
    """Open an Engine.IO long-polling session and never poll it (a client between two polls): the shutdown waits
    for it, up to its clients' grace, before it stops accepting connections. Returns the session id."""
    response = requests.get(f"{url}/socket.io/", params={"EIO": "4", "transport": "polling"}, timeout=5)
    assert response.status_code == 200 and response.text.startswith("0"), response.text
    return json.loads(response.text[1:])["sid"]


def test_during_the_drain_ready_is_503_and_connects_are_refused_with_server_shutting_down(
    start_service, fake_binance: FakeBinance
) -> None:
    """Between the signal and the closed listener, a load balancer's new health check sees 503 and a new client
    a connect_error that says why; then the process exits 0."""
    service = start_service(SHUTDOWN_TIMEOUT="10")
    client = RecordingClient(service.url)
    try:
        silent_polling_session(service.url)
        assert service.get("/ready").status_code == 200
        assert service.proc is not None
        service.proc.send_signal(signal.SIGTERM)
        client.wait("server_shutdown", timeout=3)
        ready = service.get("/ready")  # each request on a new connection: the listener is still open
        assert ready.status_code == 503 and ready.json()["ready"] is False, ready.text
        assert any("shutting down" in reason for reason in ready.json()["reasons"]), ready.text
        health = service.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy", health.text
        error = refused_connection(service.url)
        assert error["data"]["code"] == "SERVER_SHUTTING_DOWN" and "shutting down" in error["message"], error
        assert service.metric("websocket_streaming_rejected_inputs_total", code="SERVER_SHUTTING_DOWN") == 1
        assert service.metric("websocket_streaming_shutting_down") == 1
        assert service.proc.wait(timeout=15) == 0, service.log()
    finally:
        client.close()
    log = service.log()
    assert "1 client connections still open after 2.0s" in log and "shutdown complete" in log, log


def test_a_shutdown_past_shutdown_timeout_exits_1(start_service, fake_binance: FakeBinance) -> None:
    """A client between two polls holds the drain up to the bound, and Binance stops answering (the close
    handshakes hang): the watchdog ends the process with status 1 at SHUTDOWN_TIMEOUT, not later."""
    with FreezableProxy(fake_binance.port) as proxy:
        service = start_service(SHUTDOWN_TIMEOUT="1", BINANCE_WS_URL=proxy.ws_url)
        wait_for(lambda: any(conn.open for conn in fake_binance.connections()), timeout=10,
                 message="an upstream connection")
        silent_polling_session(service.url)
        proxy.freeze()
        status, took = terminate(service)
    log = service.log()
    assert status == 1, log
    assert 1.0 <= took < 2.0, f"exited after {took:.2f}s"
    assert "shutdown did not finish within SHUTDOWN_TIMEOUT=1s; exiting with status 1" in log
    assert "shutdown complete" not in log


def test_a_second_signal_during_the_shutdown_exits_at_once(start_service, fake_binance: FakeBinance) -> None:
    service = start_service(SHUTDOWN_TIMEOUT="30")
    silent_polling_session(service.url)  # holds the drain open for its clients' grace (2 s)
    assert service.proc is not None
    service.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: service.get("/ready").status_code == 503, timeout=3, message="/ready 503 once shutting down")
    status, took = terminate(service, signal.SIGINT)
    assert status == 1, service.log()
    assert took < 1.0, f"the second signal took {took:.2f}s"
    assert "SIGINT during shutdown: exiting now" in service.log()


def test_clients_reconnect_by_themselves_to_the_next_process(start_service, fake_binance: FakeBinance) -> None:
    """server_shutdown is followed by a transport close, not a Socket.IO disconnect, so clients' automatic
    reconnection (socket.io-client and python-socketio alike) brings them back after a restart."""
    first = start_service()
    client = RecordingClient(first.url, reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.5)
    try:
        client.wait("connected")
        assert terminate(first)[0] == 0
        client.wait("server_shutdown", timeout=3)
        second = start_service(PORT=str(first.port))
        client.wait("connected", count=2, timeout=15)
        assert second.get("/stats").json()["data"]["connected_clients"] == 1
    finally:
        client.close()


def test_readiness_and_health_follow_the_price_sources(start_service, fake_binance: FakeBinance) -> None:
    """No stream and no REST: /health 503 unhealthy, /ready 503. REST back: /health 200 degraded, still not
    ready. Stream back: both 200."""
    fake_binance.refuse_connections(60)
    fake_binance.set_rest_failure(500)
    service = start_service(wait_ready=False, SYMBOLS_RETRY_INTERVAL="1")
    wait_for(lambda: _status(service, "/health") == 503, timeout=10, message="/health did not turn 503")
    health = service.get("/health").json()
    assert health["status"] == "unhealthy" and health["dependencies"]["rest"]["status"] == "unhealthy"
    ready = service.get("/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert any("upstream" in reason for reason in ready.json()["reasons"])

    fake_binance.set_rest_failure(None)
    wait_for(lambda: service.get("/price/BTCUSDT").status_code == 200, timeout=10)
    wait_for(lambda: _status(service, "/health") == 200, timeout=20, message="/health did not come back")
    assert service.get("/health").json()["status"] == "degraded"
    assert service.get("/ready").status_code == 503

    fake_binance.refuse_connections(0)
    wait_for(lambda: _status(service, "/ready") == 200, timeout=20, message="/ready did not turn 200")
    body = service.get("/ready").json()
    assert body == {"ready": True, "reasons": [], "upstream_connected": True, "source": "binance",
                    "symbols_loaded": True, "version": VERSION}
    wait_for(lambda: service.get("/health").json()["status"] == "healthy", timeout=10)


def _status(service: ServiceProcess, path: str) -> int:
    try:
        return service.get(path).status_code
    except requests.RequestException:
        return 0


def test_json_logs_to_stdout_and_a_rotating_file_without_secrets(
    start_service, fake_binance: FakeBinance, tmp_path: Path
) -> None:
    token, jwt_secret = "tok-sekrit-4711", "jwt-sekrit-0815-jwt-sekrit-0815-42"  # HS256: at least 32 bytes
    log_file = tmp_path / "logs" / "service.log"
    service = start_service(LOG_FORMAT="json", LOG_FILE=str(log_file), LOG_MAX_BYTES="4096",
                            LOG_BACKUP_COUNT="2", AUTH_TOKENS=token, JWT_SECRET=jwt_secret,
                            CORS_ALLOWED_ORIGINS="https://dash.example.com")
    client = RecordingClient(service.url, auth={"token": token})
    try:
        client.call("subscribe", {"symbols": ["BTCUSDT", "ETHUSDT", "XRPUSDT"]})
        client.wait("price_update", count=3)
        lines_before = len(service.log().splitlines())
        updates_before = len(client.received("price_update"))
        time.sleep(3)
        delivered = len(client.received("price_update")) - updates_before
        new_lines = len(service.log().splitlines()) - lines_before
        assert delivered >= 15 and new_lines <= 2, (delivered, new_lines)  # lifecycle events only, not ticks
    finally:
        client.close()
    assert terminate(service)[0] == 0
    stdout_lines = service.log().splitlines()
    entries = [json.loads(line) for line in stdout_lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in entries)
    messages = " ".join(entry["message"] for entry in entries)
    assert "listening on" in messages and "connected to" in messages and "shutdown complete" in messages
    file_lines = log_file.read_text().splitlines()
    assert file_lines == stdout_lines
    for text in (service.log(), log_file.read_text()):
        assert token not in text and jwt_secret not in text


def test_the_log_file_is_rotated(start_service, fake_binance: FakeBinance, tmp_path: Path) -> None:
    log_file = tmp_path / "service.log"
    service = start_service(LOG_FILE=str(log_file), LOG_MAX_BYTES="1024", LOG_BACKUP_COUNT="2",
                            RECONNECT_MAX_DELAY="0.5")
    for _ in range(30):  # each upstream close and reconnect is logged
        if Path(f"{log_file}.2").exists():
            break
        fake_binance.close_all(1001, "going away")
        wait_for(lambda: fake_binance.open_connections(), timeout=10)
    assert Path(f"{log_file}.2").exists(), "no rotation at 1 KiB"
    assert terminate(service)[0] == 0
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("service.log"))
    assert files == ["service.log", "service.log.1", "service.log.2"]


def test_version_and_build_info(service: ServiceProcess) -> None:
    health = service.get("/health").json()
    assert health["version"] == VERSION
    assert health["build"]["version"] == VERSION and health["build"]["async_mode"] == ASYNC_MODE
    text = service.get("/metrics").text
    assert metric_value(text, "websocket_streaming_build_info", version=VERSION, async_mode=ASYNC_MODE) == 1
    (build,) = [s for s in samples_of(text) if s.name == "websocket_streaming_build_info"]
    assert {"version", "commit", "python", "async_mode"} <= set(build.labels), build.labels


def exit_status_of_start(env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Start ``python app.py`` that is expected to give up: (its exit status, its log)."""
    process = ServiceProcess(env, log_path).start(wait_ready=False)
    assert process.proc is not None
    try:
        return process.proc.wait(timeout=15), process.log()
    finally:
        process.stop()


def test_a_port_in_use_is_a_clear_error(service: ServiceProcess, fake_binance: FakeBinance, tmp_path: Path) -> None:
    status, log = exit_status_of_start(service_env(fake_binance, PORT=str(service.port)), tmp_path / "second.log")
    assert status == 1
    assert f"cannot listen on 127.0.0.1:{service.port}" in log and "Set PORT" in log and "Traceback" not in log
    assert service.get("/health").status_code == 200


def test_a_starting_process_serves_its_first_request_with_the_prices_already_flowing(
        start_service, fake_binance: FakeBinance) -> None:
    """The port is bound early and the first request waits in the backlog until the upstream is live and the
    symbols are loaded: a restart's reconnecting clients never find a process without prices."""
    service = start_service(wait_ready=False)
    first = None
    deadline = time.monotonic() + 20
    while first is None and time.monotonic() < deadline:
        try:
            first = requests.get(service.url + "/ready", timeout=10)
        except requests.ConnectionError:  # before the port is bound
            time.sleep(0.01)
    assert first is not None and first.status_code == 200, first.text if first is not None else "no answer"
    log = service.log()
    assert log.index("upstream 0: connected") < log.index("listening on") and "loaded" in log


def test_a_starting_process_whose_upstream_refuses_serves_at_once_after_the_first_attempt(
        start_service, fake_binance: FakeBinance) -> None:
    fake_binance.refuse_connections(60)
    service = start_service(wait_ready=False)
    wait_for(lambda: "listening on" in service.log(), timeout=20, message="the service did not start serving")
    log = service.log()
    started = _log_time(log, "starting websocket-streaming")
    assert _log_time(log, "listening on") - started < 1.5, log  # not the whole UPSTREAM_FIRST
    assert service.get("/ready").status_code == 503


def _log_time(log: str, text: str) -> float:
    line = next(line for line in log.splitlines() if text in line)
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def test_the_listen_backlog_holds_a_reconnect_storm(service: ServiceProcess) -> None:
    """Every client of a restarted process reconnects within a second or two: the kernel queues that many
    handshakes for the accept loop (the servers' own defaults, 50 and 128, would drop them)."""
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{service.port}"], capture_output=True, text=True,
                               timeout=10).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listening[0] == "LISTEN" and int(listening[2]) == min(4096, somaxconn), listening


@pytest.mark.parametrize("key, value", [("LOG_FORMAT", "xml"), ("ASYNC_MODE", "threading")])
def test_bad_operations_settings_exit_2(fake_binance: FakeBinance, tmp_path: Path, key: str, value: str) -> None:
    status, log = exit_status_of_start(service_env(fake_binance, **{key: value}), tmp_path / "bad.log")
    assert status == 2 and key in log and "configuration error" in log
