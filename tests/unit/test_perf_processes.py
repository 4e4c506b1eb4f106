"""bench/perf_processes.py: the service under the bench runs the production defaults but for what it must change."""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

import bench.perf_processes as perf_processes
from bench.perf_processes import SERVICE_LIMITS, ServiceTarget, changed_settings
from config import Settings
from tests.e2e.process import ROOT

# What the bench changes (docs/PERFORMANCE.md, "The servers", says why): to run against the fake, and the limits.
BENCH_CHANGES = {"BINANCE_WS_URL", "BINANCE_REST_URL", "HOST", "PORT", "REDIS_DB", "DEFAULT_SYMBOLS",
                 "LOG_FILE"} | set(SERVICE_LIMITS)


class Exchange:
    """Stands in for a started FakeBinance: the bench reads only its URLs."""

    ws_url = "ws://127.0.0.1:39999"
    rest_url = "http://127.0.0.1:39999"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting in the environment, no .env: returns where a .env may be written."""
    for field in fields(Settings):
        monkeypatch.delenv(field.name.upper(), raising=False)
    dotenv = tmp_path / ".env"
    monkeypatch.setattr(perf_processes, "DOTENV", dotenv)
    return dotenv


class Bybit:
    """Stands in for a started FakeBybit."""

    ws_url = "ws://127.0.0.1:39998"
    rest_url = "http://127.0.0.1:39998"


BYBIT_CHANGES = {"EXCHANGES", "BYBIT_WS_URL", "BYBIT_REST_URL"}


@pytest.mark.parametrize("mode, bybit, extra", [("eventlet", None, set()), ("gevent", None, {"ASYNC_MODE"}),
                                                ("eventlet-unrecorded", None, {"HISTORY_ENABLED"}),
                                                ("eventlet", Bybit(), BYBIT_CHANGES)])
def test_the_bench_changes_only_what_it_must(clean_environment: Path, tmp_path: Path, mode: str,
                                             bybit: Bybit | None, extra: set[str]) -> None:
    target = ServiceTarget(mode, Exchange(), ["BTCUSDT", "ETHUSDT"], tmp_path,  # type: ignore[arg-type]
                           dict(REDIS_PORT="6379", REDIS_DB="14"), bybit=bybit)  # type: ignore[arg-type]
    changed = target.settings()
    assert set(changed) == BENCH_CHANGES | extra, "update docs/PERFORMANCE.md's table with the bench"
    assert changed["DEFAULT_SYMBOLS"] == "BTCUSDT,ETHUSDT" and changed["BINANCE_REST_URL"] == Exchange.rest_url
    if bybit is not None:
        assert (changed["EXCHANGES"], changed["BYBIT_WS_URL"], changed["BYBIT_REST_URL"]) == (
            "binance,bybit", Bybit.ws_url, Bybit.rest_url)


def test_changed_settings_include_dotenv_and_hide_secrets(clean_environment: Path) -> None:
    clean_environment.write_text("LOG_LEVEL=DEBUG\nJWT_SECRET=a-secret-of-at-least-thirty-two-bytes\n"
                                 "CORS_ALLOWED_ORIGINS=https://dash.example.com\n")
    env = {"HOST": "127.0.0.1", "RECONNECT_DELAY": "5", "UNRELATED": "x"}
    assert changed_settings(env) == {"HOST": "127.0.0.1", "LOG_LEVEL": "DEBUG", "JWT_SECRET": "(set)",
                                     "CORS_ALLOWED_ORIGINS": "https://dash.example.com"}


def test_performance_doc_names_every_setting_the_bench_changes() -> None:
    doc = (ROOT / "docs" / "PERFORMANCE.md").read_text()
    table = doc[doc.index("**The servers.**"):doc.index("Everything else keeps its default")]
    documented = {name for line in table.splitlines() if line.strip().startswith("| `")
                  for name in re.findall(r"`([A-Z_]+)`", line.split("|")[1])}
    missing = (BENCH_CHANGES | {"ASYNC_MODE", "EXCHANGES", "BYBIT_WS_URL", "BYBIT_REST_URL"}) - documented
    assert not missing, f"docs/PERFORMANCE.md's table of the servers' settings lacks {sorted(missing)}"
