"""Measure how long the service takes to notice and recover from each upstream, REST and Redis fault.

    .venv/bin/python -m bench.recovery [--quick]

Runs the fake exchange, a private redis-server and the service (``python app.py``, production timings unless
--quick), with one python-socketio client subscribed to four symbols, then injects each fault in turn and
prints a table: when clients were told (``stream_status``), and when every symbol was updating again. Loopback
only, bounded: every wait has a deadline. Prints numbers; judges nothing.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.clients import RecordingClient
from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for
from tests.redis_server import RedisProcess

SYMBOLS = ["BTCUSDT", "ETHUSDT", "XRPUSDT", "DOGEUSDT"]
QUICK = dict(RECONNECT_DELAY="0.5", RECONNECT_MAX_DELAY="1", STALE_TIMEOUT="3", PING_INTERVAL="2", PONG_TIMEOUT="2")
PRODUCTION = dict(RECONNECT_DELAY="5", RECONNECT_MAX_DELAY="10", STALE_TIMEOUT="30", PING_INTERVAL="20",
                  PONG_TIMEOUT="10")
REFUSAL = 10.0  # seconds of refused handshakes in the refusal scenarios
# Pause between scenarios once the service is healthy again. The reconnect delays start afresh as soon as a
# connection delivers (streaming.core.pacing.ReconnectPolicy), so each scenario is measured on its own.
SETTLE = 2.0


def now_ms() -> int:
    return int(time.time() * 1000)


class Run:
    def __init__(self, service: ServiceProcess, client: RecordingClient, fake: FakeBinance,
                 redis_process: RedisProcess, deadline: float) -> None:
        self.service, self.client, self.fake, self.redis = service, client, fake, redis_process
        self.deadline = deadline

    def told(self, state: str, since: float) -> float | None:
        """Seconds from ``since`` until the client had a stream_status of ``state`` for every symbol."""
        def all_told() -> bool:
            seen = {d["symbol"] for d in self.client.received("stream_status", lambda d: d["state"] == state)}
            return seen >= set(SYMBOLS)
        try:
            wait_for(all_told, timeout=self.deadline)
        except AssertionError:
            return None
        return time.monotonic() - since

    def updating(self, since: float, since_ms: int) -> float | None:
        """Seconds from ``since`` until every symbol had an update newer than ``since_ms``."""
        try:
            for symbol in SYMBOLS:
                self.client.wait("price_update", lambda d, s=symbol: d["symbol"] == s and d["eventTime"] > since_ms,
                                 timeout=self.deadline)
        except AssertionError:
            return None
        return time.monotonic() - since


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:6.2f} s"


def scenario_drop(run: Run) -> tuple[float | None, float | None, str]:
    start, start_ms = time.monotonic(), now_ms()
    run.fake.drop_all()
    return run.told("reconnecting", start), run.updating(start, start_ms), "TCP drop, no close frame"


def scenario_close(code: int, reason: str) -> Callable[[Run], tuple[float | None, float | None, str]]:
    def scenario(run: Run) -> tuple[float | None, float | None, str]:
        start, start_ms = time.monotonic(), now_ms()
        run.fake.close_all(code, reason)
        return run.told("reconnecting", start), run.updating(start, start_ms), f"server close {code}"
    return scenario


def scenario_refuse(run: Run) -> tuple[float | None, float | None, str]:
    start, start_ms = time.monotonic(), now_ms()
    run.fake.refuse_connections(REFUSAL)
    run.fake.drop_all()
    return (run.told("reconnecting", start), run.updating(start, start_ms),
            f"drop, then {REFUSAL:g} s of refused handshakes; recovery counted from the drop")


def scenario_flapping_then_refused(run: Run) -> tuple[float | None, float | None, str]:
    for _ in range(3):  # each connection delivers prices, then drops long before it is up 10 s (HEALTHY_AFTER)
        since, since_ms = time.monotonic(), now_ms()
        run.fake.drop_all()
        if run.updating(since, since_ms) is None:
            return None, None, "prices did not come back after a quick drop"
    run.client.clear()
    start, accepting, accepting_ms = time.monotonic(), time.monotonic() + REFUSAL, now_ms() + int(REFUSAL * 1000)
    run.fake.refuse_connections(REFUSAL)
    run.fake.drop_all()
    told = run.told("reconnecting", start)
    back = run.updating(accepting, accepting_ms)
    return told, back, f"3 quick drops, then {REFUSAL:g} s refused; recovery counted from the fake accepting again"


def scenario_silent(run: Run) -> tuple[float | None, float | None, str]:
    start = time.monotonic()
    run.fake.set_silent(True)
    told = run.told("stale", start)
    healed, healed_ms = time.monotonic(), now_ms()
    run.fake.set_silent(False)
    back = run.updating(healed, healed_ms)
    return told, back, "acks but no data (un-routed URL); recovery counted from the heal"


def scenario_garbage(run: Run) -> tuple[float | None, float | None, str]:
    start, start_ms = time.monotonic(), now_ms()
    connections = len(run.fake.connections())
    for frame in ('{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":999}', "not json {",
                  '{"stream":"btcusdt@ticker","data":{"e":"somethingNew","E":1}}', "[]",
                  '{"stream":"!ticker@arr","data":[{"e":"24hrTicker","s":"BTCUSD_PERP","st":2}]}'):
        for _ in range(20):
            run.fake.inject(frame)
    back = run.updating(start, start_ms)
    kept = len(run.fake.connections()) == connections
    return None, back, "100 error/garbage frames; connection kept" if kept else "connection was replaced"


def scenario_rest(status: int, symbol: str) -> Callable[[Run], tuple[float | None, float | None, str]]:
    """Clients told: from the fault until a /price user had its 503 with Retry-After ("-" if it did not get one)."""
    def scenario(run: Run) -> tuple[float | None, float | None, str]:
        start = time.monotonic()
        run.fake.set_rest_failure(status, retry_after=3)
        first = run.service.get(f"/price/{symbol}")  # not streamed, not cached: it needs Binance REST
        told = time.monotonic() - start if first.status_code == 503 and "Retry-After" in first.headers else None
        run.fake.set_rest_failure(None)
        try:
            wait_for(lambda: run.service.get(f"/price/{symbol}").status_code == 200, timeout=run.deadline,
                     interval=0.25)
            back: float | None = time.monotonic() - start
        except AssertionError:
            back = None
        return told, back, f"/price {first.status_code}, Retry-After {first.headers.get('Retry-After')}; REST paused"
    return scenario


def scenario_redis(run: Run) -> tuple[float | None, float | None, str]:
    start, start_ms = time.monotonic(), now_ms()
    run.redis.stop()
    cache_state = lambda: run.service.get("/health").json()["dependencies"]["cache"]["status"]  # noqa: E731
    wait_for(lambda: cache_state() == "degraded", timeout=run.deadline, interval=0.1)
    noticed = time.monotonic() - start
    streaming = run.updating(start, start_ms)
    healed = time.monotonic()
    run.redis.start()
    wait_for(lambda: cache_state() == "healthy", timeout=run.deadline, interval=0.1)
    return noticed, time.monotonic() - healed, f"fan-out kept going ({fmt(streaming).strip()}); /health followed"


SCENARIOS = [
    ("connection dropped", scenario_drop),
    ("closed 1008 too many requests", scenario_close(1008, "Too many requests")),
    ("closed 1001 going away", scenario_close(1001, "going away")),
    ("connections refused 10 s", scenario_refuse),
    ("flapping, then refused", scenario_flapping_then_refused),
    ("silent upstream", scenario_silent),
    ("error frames and garbage", scenario_garbage),
    ("REST 429", scenario_rest(429, "LINKUSDT")),
    ("REST 418", scenario_rest(418, "DOTUSDT")),
    ("Redis down, then back", scenario_redis),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short reconnect/stale/ping timings")
    args = parser.parse_args()
    overrides = QUICK if args.quick else PRODUCTION
    workdir = Path(tempfile.mkdtemp(prefix="recovery-"))
    with FakeBinance(tick_interval=0.25) as fake:
        redis_process = RedisProcess(workdir).start()
        env = service_env(fake, REDIS_PORT=str(redis_process.port), REDIS_DB="0", **overrides)
        service = ServiceProcess(env, workdir / "service.log").start()
        client = RecordingClient(service.url)
        try:
            client.emit("subscribe", {"symbols": SYMBOLS})
            for symbol in SYMBOLS:
                client.wait("price_update", lambda d, s=symbol: d["symbol"] == s)
            run = Run(service, client, fake, redis_process, deadline=90.0)
            timings = ", ".join(f"{k}={v}" for k, v in overrides.items())
            print(f"service timings: {timings}; fake ticks every 0.25 s")
            print(f"{'fault':32} {'clients told':>13} {'recovered':>11}  notes")
            for name, scenario in SCENARIOS:
                client.clear()
                told, back, notes = scenario(run)
                print(f"{name:32} {fmt(told):>13} {fmt(back):>11}  {notes}", flush=True)
                wait_for(lambda: service.get("/health").json()["status"] == "healthy", timeout=60)
                time.sleep(SETTLE)
        finally:
            client.close()
            service.stop()
            redis_process.stop()
            tracebacks = service.log().count("Traceback")
            print(f"tracebacks in the service log: {tracebacks}")


if __name__ == "__main__":
    main()
