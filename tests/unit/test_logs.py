"""Logging setup: JSON lines, masked secrets, stdout plus a rotating file, no duplicate handlers."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.runtime.logs import JsonFormatter, SecretMask, configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("streaming.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_json_formatter_writes_one_object_per_record() -> None:
    line = JsonFormatter().format(record("upstream %d: %s", 3, 'quote " and\nnewline'))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "streaming.test"
    assert entry["message"] == 'upstream 3: quote " and\nnewline'
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == 24


def test_json_formatter_keeps_the_traceback() -> None:
    entry = json.loads(JsonFormatter().format(record("failed", exc=True)))
    assert "ValueError: boom" in entry["exception"]


def test_secret_mask_replaces_every_configured_secret() -> None:
    mask = SecretMask(["token-abcdef", "jwt-secret-xyz", ""])
    rec = record("client sent %s and %s", "token-abcdef", "jwt-secret-xyz")
    assert mask.filter(rec) is True
    assert rec.getMessage() == "client sent *** and ***"


def test_secret_mask_leaves_other_records_alone() -> None:
    rec = record("nothing secret %d", 5)
    SecretMask(["token-abcdef"]).filter(rec)
    assert rec.args == (5,) and rec.getMessage() == "nothing secret 5"


def test_configure_logging_writes_the_same_lines_to_stdout_and_the_file(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "logs" / "service.log"
    configure_logging("INFO", "json", path, secrets=["hunter2-token"], stream=out)
    logging.getLogger("streaming.x").info("started with hunter2-token")
    logging.getLogger("streaming.x").debug("not shown at INFO")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = out.getvalue().splitlines()
    assert lines == path.read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["started with ***"]


def test_configure_logging_twice_does_not_duplicate_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", None, stream=out)
    configure_logging("INFO", "text", None, stream=out)
    logging.getLogger("streaming.x").warning("once")
    assert out.getvalue().count("once") == 1
    assert " WARNING streaming.x: once" in out.getvalue()


def test_the_log_file_rotates(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    configure_logging("INFO", "text", path, max_bytes=2048, backup_count=2, stream=io.StringIO())
    for i in range(200):
        logging.getLogger("streaming.x").info("line %d %s", i, "x" * 40)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["service.log", "service.log.1", "service.log.2"]
    assert all(p.stat().st_size <= 2048 for p in tmp_path.iterdir())


def test_an_unwritable_log_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="LOG_FILE"):
        configure_logging("INFO", "text", blocker / "service.log", stream=io.StringIO())
