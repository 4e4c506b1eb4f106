"""Integration fixtures: threads as the task runner, a private redis-server process, the shared real Redis."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.helpers import wait_for
from tests.redis_server import answers, redis_server  # noqa: F401  (fixture)


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


class RedisProcess:
    """A redis-server of this test's own, on a free port, that the test can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisProcess":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=10, message="redis-server did not start")
        return self

    def answers(self) -> bool:
        return answers(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path).start()
    yield process
    process.stop()
