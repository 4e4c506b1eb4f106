"""Integration fixtures: threads as the task runner, a private redis-server process, the shared real Redis."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.redis_server import RedisProcess, redis_server  # noqa: F401  (fixture)


class ThreadTasks:
    """TaskRunner on plain threads; remembers its threads so tests can check none is left running."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def start(self, target: Callable[..., object], *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def alive(self) -> list[threading.Thread]:
        return [thread for thread in self.threads if thread.is_alive()]


@pytest.fixture
def tasks() -> Iterator[ThreadTasks]:
    runner = ThreadTasks()
    yield runner
    wait_for(lambda: not runner.alive(), timeout=10, message="background tasks still running after the test")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path).start()
    yield process
    process.stop()
