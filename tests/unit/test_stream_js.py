"""The dashboard's client (streaming/dashboard/static/stream.js), unit-tested with a fake socket under Node's own
test runner: tests/unit/js/."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stream_js() -> None:
    result = subprocess.run(["node", "--test", "tests/unit/js/"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and re.search(r"^# pass [1-9]", result.stdout, re.MULTILINE), result.stdout
