"""Record the exchanges' raw upstream frames, as the service receives them, for replaying later
(UPSTREAM_REPLAY_FILE).

    python -m streaming.record --out recordings/binance [--symbols BTCUSDT,ETHUSDT] [--streams ticker,trade,book]
                               [--exchanges binance,bybit] [--duration SECONDS]

Connects through the service's own upstream pools (routes, limits, pings, reconnects: BINANCE_WS_URL,
BYBIT_WS_URL and the other settings from the environment and .env) and writes every text frame with its
exchange and receive time as gzip JSON Lines, one file per UTC day: ``--out recordings/binance`` writes
``recordings/binance-YYYY-MM-DD.jsonl.gz``. Each symbol is recorded on every exchange named.
Runs for --duration seconds, or until SIGINT / SIGTERM. Exit status 2: bad arguments or configuration.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from config import ConfigError, Settings
from streaming.core.channels import BINANCE, KINDS, Channel, Kind, parse_kinds
from streaming.core.errors import InvalidRequestError, InvalidSymbolError
from streaming.core.symbols import normalise_symbol
from streaming.exchanges.adapter import Exchange
from streaming.exchanges.messages import StreamBatch
from streaming.exchanges.recording import day_file
from streaming.exchanges.registry import EXCHANGES, exchange_named
from streaming.runtime.tasks import ThreadTasks
from streaming.upstream.connection import UpstreamConnection
from streaming.upstream.pool import UpstreamPool, pool_for
from streaming.upstream.recorder import FrameRecorder

__all__ = ["main"]

log = logging.getLogger("streaming.record")

STOP_TIMEOUT = 5.0


class Tally:
    """The pools' observer: counts the updates (the frames themselves reach the recorder through the tap)."""

    def __init__(self) -> None:
        self.updates = 0
        self.reconnects = 0
        self._lock = threading.Lock()

    def on_updates(self, batch: StreamBatch, received_at: float) -> None:
        with self._lock:
            self.updates += len(batch.updates)

    def on_event(self, connection: UpstreamConnection, event: str, detail: str = "") -> None:
        if event == "reconnect":
            with self._lock:
                self.reconnects += 1
        elif event in ("error_frame", "unrecognised"):
            log.debug("upstream %d (%s): %s %s", connection.index, connection.route, event, detail)

    def on_pool_error(self) -> None:
        log.error("an upstream pool task failed; see the traceback above")


def _symbols(raw: str) -> list[str]:
    symbols: list[str] = []
    for item in raw.split(","):
        if item.strip():
            symbol = normalise_symbol(item)
            if symbol not in symbols:
                symbols.append(symbol)
    if not symbols:
        raise InvalidSymbolError("expected symbols such as BTCUSDT,ETHUSDT")
    return symbols


def _arguments(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m streaming.record", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="path prefix: PATH-YYYY-MM-DD.jsonl.gz, one file per UTC day")
    parser.add_argument("--symbols", default=",".join(settings.default_symbols),
                        help="comma-separated (default: DEFAULT_SYMBOLS)")
    parser.add_argument("--streams", default=",".join(kind.value for kind in KINDS),
                        help="ticker, trade and/or book, comma-separated (default: all three)")
    parser.add_argument("--exchanges", default=BINANCE,
                        help=f"{' and/or '.join(EXCHANGES)}, comma-separated (default: {BINANCE})")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to record (default: until stopped)")
    args = parser.parse_args(argv)
    try:
        args.symbols = _symbols(args.symbols)
        args.kinds = parse_kinds([item.strip() for item in args.streams.split(",") if item.strip()])
        names = [item.strip() for item in args.exchanges.split(",") if item.strip()] or [BINANCE]
        args.exchanges = list({name: exchange_named(name) for name in names}.values())
    except (InvalidSymbolError, InvalidRequestError) as exc:
        parser.error(str(exc))
    if args.duration < 0:
        parser.error("--duration must be a positive number of seconds (0: until stopped)")
    return args


def record(settings: Settings, prefix: str, symbols: Sequence[str], kinds: Sequence[Kind], duration: float,
           stop: threading.Event, exchanges: Sequence[Exchange] = (EXCHANGES[BINANCE],)) -> FrameRecorder:
    """Record until ``duration`` seconds have passed (0: no limit) or ``stop`` is set; returns the recorder."""
    tasks = ThreadTasks()
    recorder = FrameRecorder(prefix, tasks)
    tally = Tally()
    pools: dict[tuple[str, str], UpstreamPool] = {}
    streams = 0
    for exchange in exchanges:
        for channel in (Channel(exchange.name, kind, symbol) for symbol in symbols for kind in kinds
                        if kind in exchange.kinds):
            key = (exchange.name, exchange.route_of(channel))
            if key not in pools:
                pools[key] = pool_for(settings, exchange, key[1], tasks, tally, tap=recorder.offer)
            pools[key].pin([exchange.stream_of(channel)])
            streams += 1
    recorder.start()
    for pool in pools.values():
        pool.start(connect_idle=pool.route == pool.exchange.routes[0])
    log.info("recording %d streams of %d symbols from %s to %s (one file per UTC day)%s", streams,
             len(symbols), ", ".join(settings.ws_url_of(exchange.name) for exchange in exchanges),
             day_file(prefix, time.time() * 1000), f" for {duration:g}s" if duration else "")
    deadline = time.monotonic() + duration if duration else None
    try:
        while not stop.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))):
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        for pool in pools.values():
            pool.stop(STOP_TIMEOUT)
        recorder.stop(STOP_TIMEOUT)
    log.info("%d updates received, %d reconnects", tally.updates, tally.reconnects)
    return recorder


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.load(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    args = _arguments(argv, settings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    recorder = record(settings, args.out, args.symbols, args.kinds, args.duration, stop, args.exchanges)
    print(f"recorded {recorder.written} frames ({recorder.dropped} dropped) to {', '.join(recorder.paths) or '-'}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
