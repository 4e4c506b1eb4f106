"""socket.io-client (Node) with pinned transports, in a process of its own (tests/e2e/transport_client.js): its
JSON lines are collected as they come; it stays connected until closed."""
from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from bench.perf_processes import node_binary
from tests.e2e.process import ROOT
from tests.helpers import wait_for

__all__ = ["NodeClient"]

SCRIPT = ROOT / "tests" / "e2e" / "transport_client.js"
STOP_TIMEOUT = 10.0


class NodeClient:
    """Connects to `url` with `transports` only, subscribes to `symbol`, and reports ready after `count`
    price_updates; stopped by its own PID."""

    def __init__(self, url: str, transports: Sequence[str], symbol: str = "BTCUSDT", count: int = 3) -> None:
        assert (ROOT / "node_modules" / "socket.io-client").is_dir(), "run `make node` (npm ci) first"
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [node_binary(), str(SCRIPT), url, ",".join(transports), symbol, str(count)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, name="node-client-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(json.loads(line))

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every line of event `name` so far: {event, transport, data}."""
        with self._lock:
            return [line for line in self.lines if line["event"] == name]

    def wait_ready(self, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The price_update lines, once `count` of them came; AssertionError if the client gave up first."""
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the Node client exited with {self.proc.returncode}: {self.lines[-5:]}")
            return bool(self.events("ready"))

        wait_for(ready, timeout=timeout, message=f"no ready from the Node client; last lines {self.lines[-5:]}")
        return self.events("price_update")

    def close(self) -> int:
        """Closes its stdin (it disconnects and exits 0), SIGKILL after STOP_TIMEOUT; returns the exit status."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.proc.returncode
