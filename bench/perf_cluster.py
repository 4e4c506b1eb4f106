"""The cluster as a server under test (``make bench SCENARIO=cluster``): a Redis of its own, one ingestor
(ROLE=ingest) and N gateways (ROLE=gateway) on consecutive free ports, under one async mode; the clients are
spread over the gateways by the loadgen processes. Its CPU and memory are the gateways' and the ingestor's;
``remarks`` breaks them down per process, Redis included, and gives the Redis hop's own latency as the gateways
measured it (cluster_publish_to_gateway_seconds)."""
from __future__ import annotations

import requests

from bench.perf_processes import READY_TIMEOUT, SERVICE_LIMITS, _answers_ready, changed_settings, cpu_seconds, rss_bytes
from tests.e2e.process import ServiceProcess, service_env
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for
from tests.metrics_samples import metric_value
from tests.redis_server import RedisProcess

__all__ = ["ClusterTarget"]

HOP = "websocket_streaming_cluster_publish_to_gateway_seconds"


class ClusterTarget:
    def __init__(self, mode: str, fake: FakeBinance, symbols: list[str], workdir, gateways: int = 3) -> None:
        self.name = f"cluster-{mode}"
        self._redis = RedisProcess(workdir)
        self._workdir = workdir
        self._fake = fake
        self._mode = mode
        self._symbols = symbols
        self._count = gateways
        self.gateways: list[ServiceProcess] = []
        self.ingestor: ServiceProcess | None = None
        self._changed = changed_settings(self._env("gateway", "gateway-1"))
        self._cpu_start: dict[int, float] = {}

    def _env(self, role: str, node: str) -> dict[str, str]:
        return service_env(self._fake, test_settings=False, ASYNC_MODE=self._mode,
                           DEFAULT_SYMBOLS=",".join(self._symbols), ROLE=role, NODE_ID=node, REDIS_ENABLED="true",
                           REDIS_PORT=str(self._redis.port), REDIS_DB="0", **SERVICE_LIMITS)

    def settings(self) -> dict[str, str]:
        return dict(self._changed)

    @property
    def url(self) -> str:
        return self.gateways[0].url

    @property
    def urls(self) -> list[str]:
        return [gateway.url for gateway in self.gateways]

    @property
    def pid(self) -> int:
        return self.pids[0]

    @property
    def pids(self) -> list[int]:
        processes = [*self.gateways, *([self.ingestor] if self.ingestor else [])]
        return [process.proc.pid for process in processes if process.proc is not None]

    def start(self) -> None:
        self._redis.start()
        self.ingestor = ServiceProcess(self._env("ingest", "ingest-1"), self._workdir / f"{self.name}-ingest.log")
        self.ingestor.start()
        for index in range(1, self._count + 1):
            gateway = ServiceProcess(self._env("gateway", f"gateway-{index}"),
                                     self._workdir / f"{self.name}-gateway-{index}.log")
            self.gateways.append(gateway.start())
        for gateway in self.gateways:
            wait_for(lambda: _answers_ready(gateway.url), timeout=READY_TIMEOUT,  # noqa: B023
                     message=f"{self.name} gateway /ready; log: {gateway.log_path}")
        assert self._redis.proc is not None
        self._cpu_start = {pid: cpu_seconds(pid) for pid in [*self.pids, self._redis.proc.pid]}

    def alive(self) -> bool:
        return all(process.proc is not None and process.proc.poll() is None
                   for process in [*self.gateways, *([self.ingestor] if self.ingestor else [])])

    def remarks(self) -> list[str]:
        """Per process: CPU seconds since start and RSS; the Redis hop's p50/p99 (histogram buckets)."""
        assert self._redis.proc is not None
        parts = []
        named = [(f"gateway-{i + 1}", g.proc.pid) for i, g in enumerate(self.gateways) if g.proc is not None]
        if self.ingestor is not None and self.ingestor.proc is not None:
            named.append(("ingestor", self.ingestor.proc.pid))
        named.append(("redis", self._redis.proc.pid))
        for name, pid in named:
            cpu = cpu_seconds(pid) - self._cpu_start.get(pid, 0.0)
            parts.append(f"{name} {cpu:.1f} CPU s, {rss_bytes(pid) / 2**20:.0f} MB")
        remarks = ["per process since start: " + "; ".join(parts)]
        hops = [hop_quantiles(gateway.url) for gateway in self.gateways]
        shown = [f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms" for p50, p99 in hops if p50 is not None]
        if shown:
            remarks.append("the Redis hop (leader to gateway, by the gateways' histogram): " + "; ".join(shown))
        return remarks

    def stop(self) -> int | None:
        status = None
        for process in [*self.gateways, *([self.ingestor] if self.ingestor else [])]:
            status = process.stop()
        self._redis.stop()
        return status


def hop_quantiles(url: str) -> tuple[float | None, float | None]:
    """p50 and p99 of a gateway's hop histogram, by linear interpolation in its buckets."""
    try:
        text = requests.get(url + "/metrics", timeout=10).text
    except requests.RequestException:
        return None, None
    buckets = []
    for line in text.splitlines():
        if line.startswith(HOP + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    total = metric_value(text, HOP + "_count")
    if not total:
        return None, None
    return _quantile(buckets, total, 0.5), _quantile(buckets, total, 0.99)


def _quantile(buckets: list[tuple[float, float]], total: float, q: float) -> float:
    rank, low, below = q * total, 0.0, 0.0
    for bound, count in sorted(buckets):
        if count >= rank:
            if bound == float("inf"):
                return low
            return low + (bound - low) * ((rank - below) / max(1e-9, count - below))
        low, below = bound, count
    return low
