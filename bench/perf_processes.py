"""The processes bench/perf.py starts and watches: the server under test (the service under eventlet or gevent,
or the Node reference relay), the Node loadgen workers, and the /proc readings of their CPU time and memory.

Every process is started here and stopped by its own PID (SIGTERM, then SIGKILL after a deadline); every wait
has a deadline, so a server that hangs or clients that cannot connect end a run with a note, never a hang.
"""
from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Protocol

import requests
import websocket
from dotenv import dotenv_values

from config import Settings
from tests.e2e.process import ROOT, ServiceProcess, free_port, service_env, terminate
from tests.fakes.binance import FakeBinance
from tests.fakes.bybit import FakeBybit
from tests.helpers import wait_for

__all__ = ["FEEDS", "TICKERS", "TRADES", "CpuSample", "Feed", "Loadgen", "Observer", "ReferenceTarget", "ServiceTarget",
           "Target", "TickObserver", "changed_settings", "cpu_seconds", "node_binary", "open_files",
           "raise_open_files_limit", "rss_bytes"]

READY_TIMEOUT = 30.0  # seconds a server may take to answer /ready (upstream live, symbols loaded)
STOP_TIMEOUT = 10.0  # seconds a process may take to exit after SIGTERM before it gets SIGKILL
# Far above what the bench opens (every client comes from 127.0.0.1): the limits themselves are not measured.
SERVICE_LIMITS = dict(MAX_CONNECTIONS="100000", MAX_CONNECTIONS_PER_IP="100000", MAX_TCP_CONNECTIONS_PER_IP="100000")
DOTENV = ROOT / ".env"  # app.py reads it under the environment


@dataclass(frozen=True)
class Feed:
    """What a scenario's clients subscribe to and count: a stream kind of the service's contract, the fake's stream
    that carries it, and the payload field that tells one update from the next (increasing per symbol)."""

    kind: str  # as clients name it in `subscribe {streams}` (bench/loadgen.js --kind, reference-relay.js --streams)
    suffix: str  # the fake's stream of a symbol: "<symbol><suffix>"
    key: str  # the field of the fake's payload the clients see as their update's key (`eventTime` or `id`)
    update: str  # one update, in words


TICKERS = Feed("ticker", "@ticker", "E", "a tick")  # price_update, one per (symbol, eventTime)
TRADES = Feed("trade", "@aggTrade", "a", "an aggTrade")  # trade, one per (symbol, aggregate trade id)
FEEDS = {feed.kind: feed for feed in (TICKERS, TRADES)}


# ---------------------------------------------------------------- /proc readings

def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces; skip past it
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from 1
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size now, from /proc/<pid>/status (VmRSS, in kB there)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status; did the process exit?")


def open_files(pid: int) -> int:
    """File descriptors the process holds now: sockets, pipes, epoll instances (limited by RLIMIT_NOFILE)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over every core, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle and iowait
    total = sum(fields)
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by the server, the loadgen workers, this process (the fake exchange and the
    observer live here) and the whole machine: two samples give who used the cores during the window."""

    server: float
    loadgen: float
    bench: float
    machine_busy: float
    machine_total: float

    @classmethod
    def take(cls, server_pids: Sequence[int], loadgen_pids: list[int]) -> CpuSample:
        """``server_pids``: every process of the server under test (a cluster has several)."""
        busy, total = machine_cpu_seconds()
        return cls(sum(cpu_seconds(pid) for pid in server_pids), sum(_cpu_or_zero(pid) for pid in loadgen_pids),
                   cpu_seconds(os.getpid()), busy, total)


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0  # a worker that already exited


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one for this process and every child started after, since
    each client is one socket in the server and one in a loadgen worker; returns the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def node_binary() -> str:
    found = shutil.which("node")
    if found is None:
        raise SystemExit("node is not installed; the loadgen and the reference relay need Node.js 20 (`make node`)")
    return found


def _stop(proc: subprocess.Popen[Any]) -> int | None:
    """SIGTERM by PID, then SIGKILL if it is still there after STOP_TIMEOUT; returns the exit status."""
    return terminate(proc, STOP_TIMEOUT)


def _answers_ready(url: str) -> bool:
    try:
        return requests.get(url + "/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


# ---------------------------------------------------------------- servers under test

class Target(Protocol):
    """A server under test: started and stopped by the bench, measured through its PID."""

    name: str

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def pids(self) -> list[int]:
        """Every process whose CPU and memory count as the server's (one, but for a cluster)."""
        ...

    @property
    def urls(self) -> list[str]:
        """Where the clients connect, spread over the loadgen processes (one URL, but for a cluster)."""
        ...

    def start(self) -> None: ...

    def alive(self) -> bool: ...

    def stop(self) -> int | None: ...

    def settings(self) -> dict[str, str]:
        """The service settings (KEY: value) it runs with that differ from the defaults; {} for the reference."""
        ...

    def remarks(self) -> list[str]:
        """What the server itself counted that explains the clients' numbers (read before stop)."""
        ...


# The service's own counters of what it withheld from clients on purpose (README: slow clients, ordering).
SERVICE_COUNTERS = {
    "websocket_streaming_slow_client_dropped_updates_total": "updates dropped from slow clients' backlogs",
    "websocket_streaming_slow_client_conflations_total": "backlog conflations",
    "websocket_streaming_slow_client_disconnects_total": "clients cut off as slow",
    "websocket_streaming_updates_dropped_total": "ticks dropped as not newer",
}


def changed_settings(env: Mapping[str, str], dotenv_path: Path | None = None) -> dict[str, str]:
    """The settings (KEY: value as given) in which a service started with `env` differs from config.Settings'
    defaults, `.env` (DOTENV unless `dotenv_path`) included as app.py reads it; secrets show as "(set)"."""
    dotenv_path = DOTENV if dotenv_path is None else dotenv_path
    effective, defaults = Settings.load(env, str(dotenv_path)), Settings()
    given = {**{k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}, **env}
    return {f.name.upper(): given.get(f.name.upper(), "") if f.repr else "(set)" for f in fields(Settings)
            if getattr(effective, f.name) != getattr(defaults, f.name)}


UNRECORDED = "unrecorded"


class OneProcess:
    """A target that is one process at one URL."""

    url: str
    pid: int

    @property
    def pids(self) -> list[int]:
        return [self.pid]

    @property
    def urls(self) -> list[str]:
        return [self.url]


class ServiceTarget(OneProcess):
    """``python app.py`` under one async mode with the production defaults, but for what it needs to run against
    the fake on this machine: the fake's URLs, a loopback port, Redis, DEFAULT_SYMBOLS, no log file, limits raised
    for the bench's connections (see ``settings()``). With ``bybit`` (a started FakeBybit) it runs Bybit too
    (EXCHANGES=binance,bybit and the fake's URLs), for clients of its Bybit channels; ``name`` names the row
    (default ``service-<mode>``)."""

    def __init__(self, mode: str, fake: FakeBinance, symbols: list[str], workdir: Path,
                 redis: dict[str, str], bybit: FakeBybit | None = None, name: str | None = None) -> None:
        self.name = name or f"service-{mode}"
        mode, _, variant = mode.partition("-")  # eventlet-unrecorded: history off, for its cost
        unrecorded = {"HISTORY_ENABLED": "false"} if variant == UNRECORDED else {}
        exchanges = {} if bybit is None else dict(EXCHANGES="binance,bybit", BYBIT_WS_URL=bybit.ws_url,
                                                  BYBIT_REST_URL=bybit.rest_url)
        env = service_env(fake, test_settings=False, ASYNC_MODE=mode, DEFAULT_SYMBOLS=",".join(symbols),
                          **SERVICE_LIMITS, **redis, **unrecorded, **exchanges)
        self._changed = changed_settings(env)
        self._process = ServiceProcess(env, workdir / f"{self.name}.log")

    def settings(self) -> dict[str, str]:
        return dict(self._changed)

    @property
    def url(self) -> str:
        return self._process.url

    @property
    def pid(self) -> int:
        assert self._process.proc is not None, "start() first"
        return self._process.proc.pid

    def start(self) -> None:
        self._process.start()  # waits for /health
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_for(lambda: _answers_ready(self.url), timeout=READY_TIMEOUT,
                 message=f"{self.name} /ready; log: {self._process.log_path}")

    def restart(self, exited: Callable[[], None]) -> None:
        """The way a deploy restarts it: SIGTERM (its graceful shutdown tells the clients and closes them), and
        once it has exited a new process on the same port; calls ``exited`` in between. Returns once the new
        process is ready."""
        self._process.stop()
        exited()
        self._process.start(wait_ready=False)
        self.wait_ready()

    def alive(self) -> bool:
        return self._process.proc is not None and self._process.proc.poll() is None

    def remarks(self) -> list[str]:
        try:
            text = requests.get(self.url + "/metrics", timeout=10).text
        except requests.RequestException as exc:
            return [f"/metrics did not answer: {exc}"]
        counted = []
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in SERVICE_COUNTERS and float(value) > 0:
                counted.append(f"{float(value):,.0f} {SERVICE_COUNTERS[name]}")
        return [f"the service counted {', '.join(counted)}"] if counted else []

    def stop(self) -> int | None:
        return self._process.stop()


class ReferenceTarget(OneProcess):
    """bench/reference-relay.js: the same contract on Node's socket.io, reading the same fake: tickers, and the
    stream of `feed` too (as the service always streams its DEFAULT_SYMBOLS' tickers)."""

    name = "reference"

    def __init__(self, fake: FakeBinance, symbols: list[str], workdir: Path, feed: Feed = TICKERS) -> None:
        self._port = free_port()
        streams = dict.fromkeys((TICKERS.kind, feed.kind))
        self._command = [node_binary(), "bench/reference-relay.js", "--port", str(self._port),
                         "--upstream", fake.ws_url, "--symbols", ",".join(symbols), "--streams", ",".join(streams)]
        self._log_path = workdir / "reference.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() first"
        return self._proc.pid

    def start(self) -> None:
        self._log = open(self._log_path, "ab")
        self._proc = subprocess.Popen(self._command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=READY_TIMEOUT, message=f"reference relay /ready; log: {self._log_path}")

    def restart(self, exited: Callable[[], None]) -> None:
        """As ServiceTarget.restart: SIGTERM (it closes every client), then a new relay on the same port."""
        self.stop()
        exited()
        self.start()

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"reference relay exited with {self._proc.returncode}; log: {self._log_path}")
        return _answers_ready(self.url)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def settings(self) -> dict[str, str]:
        return {}

    def remarks(self) -> list[str]:
        return []

    def stop(self) -> int | None:
        status = _stop(self._proc) if self._proc is not None else None
        if self._log is not None:
            self._log.close()
        return status


# ---------------------------------------------------------------- loadgen workers

class Loadgen:
    """Several bench/loadgen.js processes, each driving its slice of the clients; spoken to in JSON lines."""

    def __init__(self, urls: Sequence[str], symbols: list[str], per_client: int, clients: int, workers: int,
                 log_path: Path, phase_seconds: float, connect_timeout: float, max_seconds: float,
                 feed: Feed = TICKERS, exchange: str | None = None, reconnect: bool = False) -> None:
        """``exchange``: what the clients name in `subscribe {exchange}` and count (None: none named, Binance);
        ``reconnect``: the clients reconnect and subscribe again with `since` (the storm scenario)."""
        if isinstance(urls, str):
            raise TypeError(f"Loadgen takes a list of URLs, not the string {urls!r}: pass [url]")
        workers = max(1, min(workers, clients))
        self._slices = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
        self._urls = list(urls)  # worker i connects its clients to urls[i % len(urls)]
        self._common = ["--symbols", ",".join(symbols), "--per-client", str(per_client),
                        "--kind", feed.kind,
                        "--phase-seconds", str(phase_seconds), "--connect-timeout", str(int(connect_timeout * 1000)),
                        "--max-seconds", str(int(max_seconds)), *(["--exchange", exchange] if exchange else []),
                        *(["--reconnect"] if reconnect else [])]
        self._log_path = log_path
        self._procs: list[subprocess.Popen[str]] = []
        self._messages: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self._log: IO[str] | None = None

    def start(self) -> Loadgen:
        self._log = open(self._log_path, "a")
        first = 0
        for index, count in enumerate(self._slices):
            proc = subprocess.Popen(
                [node_binary(), "bench/loadgen.js", "--url", self._urls[index % len(self._urls)],
                 "--clients", str(count), "--first", str(first), *self._common],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
            self._procs.append(proc)
            threading.Thread(target=self._read, args=(index, proc), daemon=True).start()
            first += count
        return self

    def _read(self, index: int, proc: subprocess.Popen[str]) -> None:
        """Forward each JSON line of one worker to the queue; an ``exited`` message when it ends."""
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                try:
                    self._messages.put((index, json.loads(line)))
                except json.JSONDecodeError:
                    pass  # not a message (a stray print); stderr goes to the log
        self._messages.put((index, {"type": "exited"}))

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def send(self, command: dict[str, Any]) -> None:
        for proc in self._procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(json.dumps(command) + "\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    pass

    def collect(self, kind: str, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """One ``kind`` message from each worker that answers within ``timeout``; also how many did not."""
        got: dict[int, dict[str, Any]] = {}
        gone: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(got) + len(gone) < len(self._procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                index, message = self._messages.get(timeout=remaining)
            except queue.Empty:
                break
            if message.get("type") == kind:
                got[index] = message
            elif message.get("type") == "exited":
                gone.add(index)
        return list(got.values()), len(self._procs) - len(got)

    def stop(self) -> None:
        """Ask every worker to close its clients and exit; then stop each one by its PID."""
        self.send({"cmd": "exit"})
        for proc in self._procs:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _stop(proc)
        if self._log is not None:
            self._log.close()


# ---------------------------------------------------------------- the fake's own record of its ticks

class Observer(Protocol):
    """Which updates the fake exchange sent in a window, whether any client got them or not."""

    def between(self, start_ms: int, end_ms: int) -> dict[str, set[int]]:
        """Per symbol, the keys of the updates whose event time is in [start_ms, end_ms)."""
        ...

    def remarks(self) -> list[str]:
        """What the last ``between`` found that the table does not show."""
        ...


class TickObserver:
    """A reader of the fake's combined stream of `feed` for the bench's symbols, on its own connection and thread:
    which updates happened (the key and event time of each), so one that the server under test passed on to no
    client still counts as lost."""

    def __init__(self, fake: FakeBinance, symbols: list[str], feed: Feed = TICKERS) -> None:
        streams = "/".join(f"{symbol.lower()}{feed.suffix}" for symbol in symbols)
        self._url = f"{fake.ws_url}/market/stream?streams={streams}"
        self._key = feed.key
        self._times: dict[str, dict[int, int]] = {symbol: {} for symbol in symbols}  # symbol -> key -> `E`
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TickObserver:
        self._ws = websocket.create_connection(self._url, timeout=10)
        self._thread = threading.Thread(target=self._read, name="tick-observer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            self._ws.abort()  # wakes the reader blocked in recv
            self._ws.close(timeout=1)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    def _read(self) -> None:
        assert self._ws is not None
        self._ws.settimeout(None)
        while True:
            try:
                text = self._ws.recv()
            except (websocket.WebSocketException, OSError):
                return
            if not text:
                return  # closed
            try:
                frame = json.loads(text)
            except ValueError:
                continue
            data = frame.get("data") if isinstance(frame, dict) else None
            if isinstance(data, dict) and data.get("s") in self._times:
                with self._lock:
                    self._times[data["s"]][int(data[self._key])] = int(data["E"])

    def between(self, start_ms: int, end_ms: int) -> dict[str, set[int]]:
        """Per symbol, the keys of the updates whose event time is in [start_ms, end_ms)."""
        with self._lock:
            return {symbol: {key for key, t in times.items() if start_ms <= t < end_ms}
                    for symbol, times in self._times.items()}

    def remarks(self) -> list[str]:
        return []
