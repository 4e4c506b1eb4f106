"""Memory of the recorded history under a sustained load: Redis per stream, and the service's own.

    .venv/bin/python -m bench.history_memory [--seconds 600] [--rate 100]

Runs the fake exchange at ``--rate`` ticks a second (each tick: one aggTrade, one bookTicker and one 24hrTicker
per streamed symbol), a private redis-server and the service (``python app.py``, production settings, so the
default retention), with one client subscribed to BTCUSDT's trades and book tickers; the default symbols'
tickers are streamed anyway. Every 30 s it prints each history stream's length and Redis memory, Redis's
``used_memory`` and the service's resident memory; at the end the ceiling the retention allows, per stream
(``HISTORY_MAX_ITEMS`` times the bytes an entry took). Loopback only, bounded by ``--seconds``. Prints numbers;
judges nothing.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import redis

from config import Settings
from tests.e2e.clients import RecordingClient
from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.redis_server import RedisProcess

SAMPLE_EVERY = 30.0
SYMBOL = "BTCUSDT"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample(client: redis.Redis, pid: int, elapsed: float) -> dict[str, tuple[int, int]]:
    streams = {}
    for key in sorted(k.decode() for k in client.scan_iter("history:*:*")):
        streams[key] = (client.xlen(key), client.memory_usage(key, samples=0) or 0)
    used = client.info("memory")["used_memory"] / 2**20
    shown = "  ".join(f"{key.removeprefix('history:')} {length:>6} {size / 2**20:6.1f} MB"
                      for key, (length, size) in streams.items() if SYMBOL in key or "ticker" in key)
    print(f"{elapsed:5.0f}s  service RSS {rss_mb(pid):6.1f} MB  Redis used {used:6.1f} MB  {shown}", flush=True)
    return streams


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=100.0, help="ticks per second of the fake exchange")
    args = parser.parse_args()
    defaults = Settings()
    with tempfile.TemporaryDirectory() as workdir, FakeBinance(tick_interval=1 / args.rate) as fake:
        private = RedisProcess(Path(workdir)).start()
        service = ServiceProcess(service_env(fake, test_settings=False, REDIS_PORT=str(private.port),
                                             REDIS_DB="0", LOG_LEVEL="WARNING"), Path(workdir) / "service.log")
        try:
            service.start()
            assert service.proc is not None
            watcher = RecordingClient(service.url)
            watcher.call("subscribe", {"symbols": [SYMBOL], "streams": ["trade", "book"]})
            client = redis.Redis(port=private.port)
            print(f"fake exchange at {args.rate:g} ticks/s for {args.seconds:g}s; retention "
                  f"{defaults.history_max_items} items, {defaults.history_max_age} s", flush=True)
            began = time.monotonic()
            streams: dict[str, tuple[int, int]] = {}
            while time.monotonic() - began < args.seconds:
                time.sleep(min(SAMPLE_EVERY, max(0.0, args.seconds - (time.monotonic() - began))))
                streams = sample(client, service.proc.pid, time.monotonic() - began)
            offsets = [trade["offset"] for trade in watcher.received("trade")]
            once = bool(offsets) and offsets == list(range(offsets[0], offsets[0] + len(offsets)))
            print(f"trades delivered to the client: {len(offsets)} ({len(offsets) / args.seconds:.0f}/s); "
                  f"each once, in order: {once}")
            print("ceiling per stream at the default retention (entries x bytes per entry measured here):")
            for key, (length, size) in streams.items():
                kind = key.split(":")[1]
                per_entry = size / length if length else 0
                ceiling = defaults.history_max_items[kind] * per_entry / 2**20
                print(f"  {key}: {length} entries, {per_entry:.0f} B each, at most {ceiling:.1f} MB")
            watcher.close()
        finally:
            service.stop()
            private.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
