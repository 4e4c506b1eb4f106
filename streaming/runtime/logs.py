"""Logging setup: human-readable or JSON lines, to stdout and to a rotating file, with secrets masked.

The service logs lifecycle events only (connections, reconnects, limits, shutdown), never one line per tick, so
writing synchronously is cheap; the fan-out never logs.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

__all__ = ["JsonFormatter", "SecretMask", "TEXT_FORMAT", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ms), level, logger, message, and exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class SecretMask(logging.Filter):
    """Replaces configured secrets (client tokens, the JWT secret) in a record's message with ``***``.

    The service never logs them on purpose; this keeps a future careless line or a library's message from
    writing one to disk."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self._secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(
    level: str,
    fmt: str = "text",
    file_path: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """Send the root logger's records to ``stream`` (stdout) and, if given, to a rotating ``file_path``.

    Replaces handlers installed earlier, so calling it twice does not duplicate lines. Raises OSError with the
    path when the log file cannot be opened."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if file_path is not None:
        try:
            file_path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(
                logging.handlers.RotatingFileHandler(
                    file_path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
                )
            )
        except OSError as exc:
            raise OSError(f"cannot write the log file {file_path}: {exc.strerror or exc}; "
                          "set LOG_FILE to a writable path, or LOG_FILE=off") from exc
    mask = SecretMask(secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(mask)
        root.addHandler(handler)
    root.setLevel(level)
