"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.binance import FakeBinance
from tests.helpers import TIMEOUT_FACTOR_VARIABLE, machine_factor

# --- fake Binance (owned with tests/fakes/; keep these first) ---------------------------------------------


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    """A fresh fake Binance USD-M futures exchange on a free 127.0.0.1 port, ticking every 0.2 s."""
    fake = FakeBinance(tick_interval=0.2).start()
    try:
        yield fake
    finally:
        fake.stop()


# --- async mode of the service processes -------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Scale the suite's timeouts and latency budgets to this machine, unless WS_TEST_TIMEOUT_FACTOR is set."""
    if TIMEOUT_FACTOR_VARIABLE not in os.environ:
        os.environ[TIMEOUT_FACTOR_VARIABLE] = f"{machine_factor():.2f}"


def pytest_report_header() -> list[str]:
    return [f"service processes run with ASYNC_MODE={os.environ.get('ASYNC_MODE', 'eventlet')}",
            f"timeouts and latency budgets scaled by {TIMEOUT_FACTOR_VARIABLE}={os.environ[TIMEOUT_FACTOR_VARIABLE]}"]


# --- fake Bybit (owned with tests/fakes/bybit*.py) -----------------------------------------------------------


@pytest.fixture
def fake_bybit() -> Iterator[object]:
    """A fresh fake Bybit v5 public linear exchange on a free 127.0.0.1 port, ticking every 0.2 s."""
    from tests.fakes.bybit import FakeBybit

    fake = FakeBybit(tick_interval=0.2).start()
    try:
        yield fake
    finally:
        fake.stop()
