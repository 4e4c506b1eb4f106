"""A cluster on one machine for end-to-end tests: a Redis of its own (so that it can be paused or stopped),
ingestors (ROLE=ingest) and gateways (ROLE=gateway) as real processes against one fake exchange."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import redis
import requests

from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for
from tests.redis_server import RedisProcess

__all__ = ["Cluster"]

# Faster than production (a 5 s lock renewed every second, 5 s heartbeats), so that fail-overs and lapses happen
# within a test.
CLUSTER_SETTINGS = dict(LEADER_TTL="3", LEADER_RENEW_INTERVAL="0.5", CLUSTER_NODE_TTL="3",
                        MAX_CONNECTIONS_PER_IP="5000")


class Cluster:
    def __init__(self, fake: FakeBinance, workdir: Path, **overrides: str) -> None:
        self.fake = fake
        self.workdir = workdir
        self.redis = RedisProcess(workdir).start()
        self.overrides = {**CLUSTER_SETTINGS, **overrides}
        self.ingestors: list[ServiceProcess] = []
        self.gateways: list[ServiceProcess] = []
        self._started: list[ServiceProcess] = []

    def _start(self, role: str, name: str, wait: bool, **overrides: str) -> ServiceProcess:
        env = service_env(self.fake, ROLE=role, NODE_ID=name, REDIS_PORT=str(self.redis.port), REDIS_DB="0",
                          **{**self.overrides, **overrides})
        process = ServiceProcess(env, self.workdir / f"{name}.log")
        self._started.append(process)
        return process.start(wait_ready=wait)

    def add_ingestor(self, **overrides: str) -> ServiceProcess:
        process = self._start("ingest", f"ingest-{len(self.ingestors) + 1}", True, **overrides)
        self.ingestors.append(process)
        return process

    def add_gateway(self, **overrides: str) -> ServiceProcess:
        process = self._start("gateway", f"gateway-{len(self.gateways) + 1}", True, **overrides)
        self.gateways.append(process)
        return process

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis.port, db=0)

    def leader_token(self) -> str | None:
        with self.client() as client:
            raw = client.get("cluster:leader")
        return raw.decode() if raw else None

    def leader(self) -> ServiceProcess | None:
        token = self.leader_token()
        if token is None:
            return None
        node = token.rpartition(":")[0]
        return next((p for p in self.ingestors if p.env["NODE_ID"] == node and p.proc and p.proc.poll() is None),
                    None)

    def wait_for_leader(self, timeout: float = 15.0, other_than: str | None = None) -> ServiceProcess:
        def elected() -> bool:
            token = self.leader_token()
            return token is not None and token != other_than and self.leader() is not None

        wait_for(elected, timeout=timeout, message="no ingestor became the leader")
        leader = self.leader()
        assert leader is not None
        return leader

    def stats(self, process: ServiceProcess) -> dict[str, Any]:
        return requests.get(process.url + "/stats", timeout=5).json()["data"]

    @staticmethod
    def kill(process: ServiceProcess, sig: signal.Signals = signal.SIGKILL) -> None:
        assert process.proc is not None
        os.kill(process.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            process.proc.wait(timeout=20)

    def stop(self) -> list[str]:
        """Stop every process and the Redis; returns the logs with a traceback."""
        broken = []
        for process in self._started:  # all drain at once, rather than one after another
            if process.proc is not None and process.proc.poll() is None:
                try:
                    os.kill(process.proc.pid, signal.SIGCONT)  # a paused one must be able to stop
                    process.proc.terminate()
                except ProcessLookupError:
                    pass
        for process in self._started:
            process.stop()
            if "Traceback" in process.log():
                broken.append(process.log())
        self.redis.stop()
        return broken
