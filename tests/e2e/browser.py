"""A headless Chromium page that a test drives step by step (tests/e2e/browser_driver.js, playwright-core with
Debian's chromium): the test can act on the service and the fake exchange between the steps."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.process import ROOT

__all__ = ["BrowserPage", "BrowserError"]


class BrowserError(AssertionError):
    pass


class BrowserPage:
    """One page in its own browser process; stopped by its own PID (``close``, or the context manager)."""

    def __init__(self, stderr_path: Path, **options: Any) -> None:
        assert (ROOT / "node_modules" / "playwright-core").is_dir(), "run `make test` (it runs npm ci) first"
        self._stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen(["node", "tests/e2e/browser_driver.js", json.dumps(options)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True)

    def __enter__(self) -> BrowserPage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, do: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"do": do, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()  # each command has its own timeout in the page
        if not line:
            raise BrowserError(f"the browser driver exited: {self._stderr_path.read_text(errors='replace')[-3000:]}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError(f"{do} {args}: {answer['error']}")
        return answer.get("value")

    def goto(self, url: str) -> int:
        return self.call("goto", url=url)

    def wait(self, expr: str, timeout: float = 10.0) -> Any:
        return self.call("wait", expr=expr, timeout=int(timeout * 1000))

    def eval(self, expr: str) -> Any:
        return self.call("eval", expr=expr)

    def text(self, selector: str) -> str:
        return self.eval(f"document.querySelector({json.dumps(selector)}).textContent")

    def log(self) -> dict[str, Any]:
        return self.call("log")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
