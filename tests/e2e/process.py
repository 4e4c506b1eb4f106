"""The service as a real process (``python app.py``) on a free port, pointed at a fake exchange."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for
from tests.metrics_samples import metric_value

__all__ = ["ROOT", "TEST_REDIS_DB", "TEST_SETTINGS", "ServiceProcess", "free_port", "service_env", "terminate"]

ROOT = Path(__file__).resolve().parents[2]
# The Redis database the end-to-end tests use (flushed around each test); WS_TEST_REDIS_DB moves it, so that
# two test runs on one machine keep apart.
TEST_REDIS_DB = int(os.environ.get("WS_TEST_REDIS_DB", "15"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """``python app.py`` on a free port; stopped by its own PID."""

    def __init__(self, env: dict[str, str], log_path: Path, prefix: tuple[str, ...] = ()) -> None:
        self.prefix = prefix  # e.g. ("prlimit", "--nofile=1200") to run the service under a wrapper
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> ServiceProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        if wait_ready:
            wait_for(self._answers, timeout=20, message=f"service did not answer /health; log: {self.log_path}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"service exited with {self.proc.returncode}: {self.log()}")
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def metric(self, name: str, **labels: str) -> float:
        """The value of the sample `name` (full name, with its prefix) whose labels include `labels`, from a
        scrape of /metrics (tests.metrics_samples.metric_value: exactly one sample must match)."""
        return metric_value(self.get("/metrics").text, name, **labels)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        terminate(self.proc)
        self._log.close()
        return self.proc.returncode


def terminate(proc: subprocess.Popen[Any], timeout: float = 15.0) -> int | None:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout`` (longer than SHUTDOWN_TIMEOUT's default, so
    the service's own bound ends an overrun first, and says so); by its own PID. Returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


# What the end-to-end tests change from the production defaults: faster reconnects and releases, and the /price
# limits out of the way (tests poll /price and emit quickly; the limits have tests of their own, test_limits.py).
TEST_SETTINGS = dict(RECONNECT_DELAY="0.5", UNSUBSCRIBE_GRACE="1", RECOVERY_GRACE="1", LOG_LEVEL="INFO",
                     PRICE_REQUESTS_PER_SECOND="10000", PRICE_REQUEST_BURST="10000")


def service_env(fake: FakeBinance, *, test_settings: bool = True, **overrides: str) -> dict[str, str]:
    """The service's environment against `fake`: this process's environment without REDIS_*, BINANCE_*, BYBIT_*
    and EXCHANGES, what any run against the fake needs (URLs, a free loopback port, the tests' Redis database,
    no log file), then TEST_SETTINGS unless `test_settings` is False (the bench runs the production defaults),
    then `overrides`."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("REDIS_", "BINANCE_", "BYBIT_")) and key != "EXCHANGES"}
    env.update(
        PORT=str(free_port()),
        HOST="127.0.0.1",
        BINANCE_WS_URL=fake.ws_url,
        BINANCE_REST_URL=fake.rest_url,
        REDIS_ENABLED="true",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT="6379",
        REDIS_DB=str(TEST_REDIS_DB),
        LOG_FILE="off",  # the test's own log (stdout) is enough; tests of the log file set it
        # eventlet unless the test run asks for another mode (make test runs the e2e suite under both)
        ASYNC_MODE=os.environ.get("ASYNC_MODE", "eventlet"),
        PYTHONUNBUFFERED="1",
    )
    if test_settings:
        env.update(TEST_SETTINGS)
    env.update(overrides)
    return env
