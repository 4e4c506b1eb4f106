"""The production process manager for real: PM2 (the npm dev dependency) runs ecosystem.config.js.

The test owns its PM2: PM2_HOME is in the test's temporary directory, so it never talks to a PM2 the machine
already runs, and PM2's logs and the service's log go there too, so nothing is written into the checkout. It
starts, restarts and deletes the app, checks that real Socket.IO clients get prices each time, and ends with
`pm2 kill`; whatever happens, the finally block leaves no daemon and no service behind.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from config import Settings
from tests.e2e.clients import RecordingClient
from tests.e2e.process import ROOT, free_port, service_env
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

PM2 = ROOT / "node_modules" / ".bin" / "pm2"
APP = "websocket-streaming"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
# PM2_HOME holds PM2's unix sockets, whose paths must fit in sockaddr_un (108 bytes on Linux).
MAX_SOCKET_PATH = 100
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def pm2_home(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/pm2, or a short directory under the system temp dir when tmp_path is too deep for PM2's
    rpc.sock (a long TMPDIR would otherwise make the daemon fail to listen)."""
    home = tmp_path / "pm2"
    if len(str(home / "rpc.sock")) <= MAX_SOCKET_PATH:
        home.mkdir()
        yield home
        return
    short = Path(tempfile.mkdtemp(prefix="pm2-"))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


class Pm2:
    """The project's pm2 CLI with one PM2_HOME and one environment; every call is bounded."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 30) -> str:
        result = subprocess.run([str(PM2), *args], cwd=ROOT, env=env or self.env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, f"pm2 {' '.join(args)} exited {result.returncode}:\n" \
                                       f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n{self.daemon_log()[-3000:]}"
        return ANSI.sub("", result.stdout)

    def apps(self) -> list[dict[str, Any]]:
        """`pm2 jlist`: every app PM2 knows, with its pid and pm2_env."""
        return json.loads(self.run("jlist"))

    def app(self) -> dict[str, Any]:
        (app,) = [app for app in self.apps() if app["name"] == APP]
        return app

    def daemon_pid(self) -> int:
        return int((self.home / "pm2.pid").read_text().strip())

    def daemon_log(self) -> str:
        """PM2's own log (pm2.log): the daemon's view of starts, signals and exits."""
        path = self.home / "pm2.log"
        return path.read_text(errors="replace") if path.exists() else "(no pm2.log)"


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie. The PM2 daemon is re-parented to PID 1 when it exits,
    and a zombie of it can stay in the process table until init reaps it; it has exited all the same."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # gone meanwhile, or no /proc: signal 0 is all we know
        return not Path("/proc").is_dir()
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def port_answers(port: int) -> bool:
    """Whether anything accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def receives_prices(url: str, symbol: str = "BTCUSDT", count: int = 2) -> None:
    """A real python-socketio client subscribes and gets `count` price_update events for `symbol`."""
    client = RecordingClient(url)
    try:
        client.wait("connected")
        assert client.call("subscribe", {"symbols": [symbol]})["symbols"] == [symbol]
        updates = client.wait("price_update", lambda update: update["symbol"] == symbol, timeout=10, count=count)
        assert all(update["price"] > 0 for update in updates)
    finally:
        client.close()


def wait_online(pm2: Pm2, url: str, not_pid: int = 0) -> int:
    """Wait until PM2 runs the app (with a PID other than `not_pid`) and it answers /health; returns the PID.

    PM2 reports "online" as soon as it has spawned the process, before the service listens, so /health is
    what says it is up."""
    pid = wait_for(lambda: (app := pm2.app())["pm2_env"]["status"] == "online" and app["pid"] not in (0, not_pid)
                   and app["pid"], timeout=15, interval=0.2, message="pm2 to report the app online")
    wait_for(lambda: healthy(url), timeout=20, interval=0.2,
             message=f"/health on {url} (pid {pid}); pm2 logs in {pm2.env['PM2_OUT_FILE']}")
    return pid


def kill_leftovers(pm2: Pm2, pids: set[int]) -> None:
    """`pm2 kill`, then SIGKILL any recorded PID that still runs this test's service or daemon (checked by its
    command line, so that a reused PID is spared; never anything by name).

    Only while this PM2_HOME has a daemon (pm2.pid, removed when the daemon stops): with none, `pm2 kill`
    would first spawn a fresh daemon just to kill it."""
    if (pm2.home / "pm2.pid").exists():
        try:
            pids.add(pm2.daemon_pid())
            pm2.run("kill", timeout=30)
        except (AssertionError, ValueError, OSError, subprocess.TimeoutExpired):
            pass  # the recorded PIDs below are the fallback
    for pid in pids:
        try:
            wait_for(lambda pid=pid: not alive(pid), timeout=5, interval=0.1)
        except AssertionError:
            if str(ROOT / "app.py") in command_line(pid) or str(pm2.home) in command_line(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("clean_redis")
def test_pm2_starts_restarts_and_deletes_the_service(fake_binance: FakeBinance, pm2_home: Path,
                                                     tmp_path: Path) -> None:
    assert PM2.exists(), "PM2 is a dev dependency: run `make test` (it runs npm ci) first"
    assert VENV_PYTHON.exists(), "ecosystem.config.js runs .venv/bin/python: run `make install` first"
    env = service_env(fake_binance, LOG_FILE=str(tmp_path / "service.log"))
    env.update(PM2_HOME=str(pm2_home), PM2_OUT_FILE=str(tmp_path / "pm2.out.log"),
               PM2_ERROR_FILE=str(tmp_path / "pm2.error.log"))
    port = int(env["PORT"])
    url = f"http://127.0.0.1:{port}"
    pm2 = Pm2(pm2_home, env)
    pids: set[int] = set()
    try:
        # The daemon is spawned first from an environment without PORT: the service can then only get the
        # test's PORT (and Redis db, fake Binance, log paths) from the environment of `pm2 start` itself.
        pm2.run("ping", env={key: value for key, value in os.environ.items() if key != "PORT"}
                | {"PM2_HOME": str(pm2_home)})
        pids.add(pm2.daemon_pid())
        pm2.run("start", "ecosystem.config.js", "--only", APP)
        first = wait_online(pm2, url)
        pids.add(first)
        app = pm2.app()
        assert app["pm2_env"]["exec_interpreter"] == str(VENV_PYTHON)
        assert app["pm2_env"]["env"]["PORT"] == str(port)
        # PM2 must wait longer than the service's own shutdown bound before it SIGKILLs
        assert app["pm2_env"]["kill_timeout"] / 1000 > Settings().shutdown_timeout
        assert re.search(r"│ status\s+│ online\s", pm2.run("describe", APP))
        receives_prices(url)

        pm2.run("restart", APP)
        second = wait_online(pm2, url, not_pid=first)
        pids.add(second)
        assert not alive(first)
        assert pm2.app()["pm2_env"]["restart_time"] == 1
        receives_prices(url)

        pm2.run("delete", APP)
        assert pm2.apps() == []
        # PM2 stops with SIGINT (its default kill_signal) and SIGKILLs after kill_timeout; both the restart
        # and the delete must have ended in the service's own graceful exit, status 0.
        assert pm2.daemon_log().count("exited with code [0] via signal [SIGINT]") == 2, pm2.daemon_log()
        daemon = pm2.daemon_pid()
        pids.add(daemon)
        pm2.run("kill")
        wait_for(lambda: not port_answers(port), timeout=10, interval=0.1, message=f"port {port} to close")
        for pid in (first, second, daemon):  # `pm2 kill` returns while the daemon is still exiting
            wait_for(lambda pid=pid: not alive(pid), timeout=10, interval=0.1, message=f"pid {pid} to exit")
        output = (tmp_path / "pm2.out.log").read_text(errors="replace")
        errors = (tmp_path / "pm2.error.log").read_text(errors="replace")
        assert output, "PM2_OUT_FILE did not receive the service's output"
        assert "Traceback" not in output + errors, (output + errors)[-3000:]
    finally:
        kill_leftovers(pm2, pids)


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(50):
        first = free_port()
        if first + count < 65535 and not any(port_answers(port) for port in range(first, first + count)):
            try:
                for port in range(first, first + count):
                    with socket.socket() as sock:
                        sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise AssertionError(f"no {count} consecutive free ports")


@pytest.mark.usefixtures("clean_redis")
def test_pm2_runs_the_cluster_profile_and_brings_a_killed_leader_back_as_a_standby(
        fake_binance: FakeBinance, pm2_home: Path, tmp_path: Path) -> None:
    env = service_env(fake_binance, LOG_FILE="off", LEADER_TTL="2", LEADER_RENEW_INTERVAL="0.5",
                      CLUSTER_NODE_TTL="3")
    ingest, gateway = consecutive_free_ports(2), consecutive_free_ports(2)
    env.update(PM2_HOME=str(pm2_home), PM2_OUT_FILE=str(tmp_path / "pm2.out.log"),
               PM2_ERROR_FILE=str(tmp_path / "pm2.error.log"), PROFILE="cluster", INGESTORS="2", GATEWAYS="2",
               INGEST_PORT=str(ingest), GATEWAY_PORT=str(gateway))
    pm2 = Pm2(pm2_home, env)
    pids: set[int] = set()
    names = {f"{APP}-ingest-1": ingest, f"{APP}-ingest-2": ingest + 1, f"{APP}-gateway-1": gateway,
             f"{APP}-gateway-2": gateway + 1}
    try:
        pm2.run("start", "ecosystem.config.js")
        pids.add(pm2.daemon_pid())
        apps = {app["name"]: app for app in pm2.apps()}
        assert set(apps) == set(names)
        assert {name: app["pm2_env"]["env"]["ROLE"] for name, app in apps.items()} == {
            name: "ingest" if "ingest" in name else "gateway" for name in names}
        for name, port in names.items():
            wait_for(lambda port=port: healthy(f"http://127.0.0.1:{port}"), timeout=20, interval=0.2,
                     message=f"{name} /health on {port}")
        for port in (gateway, gateway + 1):
            receives_prices(f"http://127.0.0.1:{port}")
        pids.update(app["pid"] for app in pm2.apps())

        def leader() -> str | None:
            stats = requests.get(f"http://127.0.0.1:{gateway}/stats", timeout=5).json()["data"]["cluster"]
            return stats["leader"]["node"] if stats["leader"] else None

        first = wait_for(leader, timeout=10, message="no leader")
        (killed,) = [app for app in pm2.apps() if app["pm2_env"]["env"]["NODE_ID"] == first]
        os.kill(killed["pid"], signal.SIGKILL)
        wait_for(lambda: leader() not in (None, first), timeout=10, message="the standby did not take over")
        receives_prices(f"http://127.0.0.1:{gateway + 1}")
        again = wait_for(lambda: (app := {a["name"]: a for a in pm2.apps()}[killed["name"]])["pid"] not in (
            0, killed["pid"]) and app["pm2_env"]["status"] == "online" and app, timeout=15,
            message="PM2 did not start the killed leader again")
        pids.add(again["pid"])
        port = names[killed["name"]]
        def standby() -> bool:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            except (requests.RequestException, ValueError):
                return False
            return health["dependencies"]["upstream"]["status"] == "standby"

        wait_for(standby, timeout=20, message="the restarted ingestor is not a standby")
        pm2.run("delete", "all")
        assert pm2.apps() == []
        errors = (tmp_path / "pm2.error.log").read_text(errors="replace")
        output = (tmp_path / "pm2.out.log").read_text(errors="replace")
        assert "Traceback" not in output + errors, (output + errors)[-3000:]
    finally:
        kill_leftovers(pm2, pids)
