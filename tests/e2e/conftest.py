"""End-to-end fixtures: the service as a real process (``python app.py``) against the fake exchange."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.clients import RecordingClient
from tests.e2e.process import ROOT, TEST_REDIS_DB, ServiceProcess, free_port, service_env  # noqa: F401
from tests.fakes.binance import FakeBinance
from tests.redis_server import redis_server  # noqa: F401  (fixture)


@pytest.fixture
def clean_redis(redis_server: str) -> Iterator[redis.Redis]:  # noqa: F811  (the fixture imported above)
    client = redis.Redis(host="127.0.0.1", port=6379, db=TEST_REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def start_service(fake_binance: FakeBinance, clean_redis: redis.Redis, tmp_path: Path) -> Iterator:
    """Factory: start_service(prefix=(command...), **env_overrides) -> ServiceProcess (stopped at teardown)."""
    started: list[ServiceProcess] = []

    def start(wait_ready: bool = True, prefix: tuple[str, ...] = (), **overrides: str) -> ServiceProcess:
        process = ServiceProcess(service_env(fake_binance, **overrides), tmp_path / f"service{len(started)}.log",
                                 prefix)
        started.append(process)
        return process.start(wait_ready)

    yield start
    for process in started:
        process.stop()
        assert "Traceback" not in process.log(), process.log()


@pytest.fixture
def service(start_service) -> ServiceProcess:
    return start_service()


@pytest.fixture
def clients(service) -> Iterator:
    """Factory: clients(**options) -> a RecordingClient connected to ``service`` (closed at teardown)."""
    made: list[RecordingClient] = []

    def connect(**kwargs: object) -> RecordingClient:
        client = RecordingClient(service.url, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()
