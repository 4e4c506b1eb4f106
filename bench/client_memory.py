"""What one connected, subscribed, idle client holds in the service, by part, under each async mode.

    .venv/bin/python -m bench.client_memory [--clients 2000] [--modes eventlet,gevent]

For each mode it starts the fake exchange and ``python app.py`` under bench/memory_probe.py (production settings
but the bench's raised connection limits), starts tracing, connects ``--clients`` socket.io-client clients
(bench/loadgen.js, websocket transport), subscribes each to one symbol's ticker, lets them idle and reads what was
allocated since and is still held: by category (the green thread's saved stack, the HTTP request's headers and
environ, socket objects, the WebSocket, Engine.IO, Socket.IO, the service's own objects, eventlet's or gevent's
timers, queues and locks) and by line. Tracing slows the connects, so the default is 2,000 clients; the bytes per
client do not depend on the count. Also the kernel's TCP memory per client (/proc/net/sockstat, both ends of the
loopback connections, so an upper bound on the server's side) and, for scale, the RSS growth per client with
tracing on (tracemalloc's own records inflate it; ``bench.perf --scenario idle`` measures RSS without them).
Prints numbers; judges nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.perf import CONNECT_TIMEOUT, SYMBOL_POOL, redis_for_service
from bench.perf_processes import SERVICE_LIMITS, Loadgen, rss_bytes
from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

MODES = ("eventlet", "gevent")
SYMBOLS = 10
SETTLE = 5.0  # seconds for the connects' and subscribes' transient objects to go
PHASE_SECONDS = 60.0
DUMP_TIMEOUT = 180.0  # a snapshot of some million blocks takes a while


def tcp_memory_bytes() -> int:
    """The kernel's memory for all TCP sockets (/proc/net/sockstat's ``TCP: ... mem`` is in pages)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def measure(mode: str, clients: int, fake: FakeBinance, redis: dict[str, str], workdir: Path) -> dict[str, Any]:
    out = workdir / f"{mode}-probe.json"
    symbols = list(SYMBOL_POOL[:SYMBOLS])
    env = service_env(fake, test_settings=False, ASYNC_MODE=mode,
                      DEFAULT_SYMBOLS=",".join(symbols), **SERVICE_LIMITS, **redis)
    probe = (sys.executable, "-m", "bench.memory_probe", str(out))
    service = ServiceProcess(env, workdir / f"{mode}.log", prefix=probe)
    service.start()
    assert service.proc is not None
    loadgen = Loadgen([service.url], symbols, 1, clients, max(1, clients // 2500), workdir / f"{mode}-loadgen.log",
                      PHASE_SECONDS, CONNECT_TIMEOUT, max_seconds=4 * PHASE_SECONDS + DUMP_TIMEOUT)
    try:
        time.sleep(SETTLE)
        rss, tcp = rss_bytes(service.proc.pid), tcp_memory_bytes()
        os.kill(service.proc.pid, signal.SIGUSR2)  # tracing starts: the baseline
        loadgen.start()
        timeout = PHASE_SECONDS + CONNECT_TIMEOUT + 15
        connected = sum(m["ok"] for m in loadgen.collect("connected", timeout)[0])
        loadgen.send({"cmd": "subscribe"})
        subscribed = sum(m["ok"] for m in loadgen.collect("subscribed", timeout)[0])
        time.sleep(SETTLE)
        rss, tcp = rss_bytes(service.proc.pid) - rss, tcp_memory_bytes() - tcp
        os.kill(service.proc.pid, signal.SIGUSR2)
        wait_for(out.exists, timeout=DUMP_TIMEOUT, message=f"{mode}: the probe wrote no {out}")
        return dict(mode=mode, connected=connected, subscribed=subscribed, rss=rss, tcp=tcp,
                    **json.loads(out.read_text()))
    finally:
        loadgen.stop()
        service.stop()


def report(result: dict[str, Any]) -> list[str]:
    n = max(1, result["connected"])
    categories = sorted(result["categories"].items(), key=lambda item: -item[1]["bytes"])
    traced = sum(cell["bytes"] for _, cell in categories)
    lines = [f"### {result['mode']}: {result['connected']:,} clients connected, {result['subscribed']:,} subscribed",
             "", "| part | KB per client | blocks per client | share |", "| --- | ---: | ---: | ---: |"]
    for name, cell in categories:
        lines.append(f"| {name} | {cell['bytes'] / n / 1000:.1f} | {cell['blocks'] / n:.1f} | "
                     f"{cell['bytes'] / max(1, traced):.0%} |")
    lines += [f"| **Python heap, traced** | **{traced / n / 1000:.1f}** | | |", "",
              f"- kernel TCP memory: {result['tcp'] / n / 1000:.1f} KB per client (both ends of loopback)",
              f"- RSS growth with tracing on: {result['rss'] / n / 1000:.1f} KB per client", "",
              "| line (innermost frame) | KB per client |", "| --- | ---: |"]
    lines += [f"| `{top['line']}` | {top['bytes'] / n / 1000:.2f} |" for top in result["top_lines"][:12]]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated of " + ", ".join(MODES))
    args = parser.parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: of {', '.join(MODES)}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-client-memory-"))
    print(f"logs in {workdir}", flush=True)
    with FakeBinance(tick_interval=1.0) as fake, redis_for_service(workdir) as redis:
        for mode in modes:
            print("\n".join(report(measure(mode, args.clients, fake, redis, workdir))) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
