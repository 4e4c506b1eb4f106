"""A real Redis for the tests: the one on 127.0.0.1:6379 if it answers, else one this session starts and stops."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from typing import Iterator

import pytest
import redis

from tests.helpers import wait_for

HOST, PORT = "127.0.0.1", 6379


def answers(port: int = PORT) -> bool:
    """Whether a Redis answers PING on 127.0.0.1:port."""
    client = redis.Redis(host=HOST, port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """Yields ``host:port`` of a Redis that answers; fails loudly when none can be had."""
    if answers():
        yield f"{HOST}:{PORT}"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "no Redis answers on 127.0.0.1:6379 and redis-server is not installed; "
            "install it (Debian: apt-get install redis-server) and run the tests again"
        )
    workdir = tempfile.mkdtemp(prefix="redis-test-")
    proc = subprocess.Popen(
        [binary, "--port", str(PORT), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(answers, timeout=10, message="the Redis started for the tests did not answer")
        yield f"{HOST}:{PORT}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
