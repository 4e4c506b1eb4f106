"""The React kit of docs/examples/react/: the usePriceStream hook's Vitest suite against the running service, and
its demo app built with Vite and run in headless Chromium."""
from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.browser import BrowserPage
from tests.e2e.process import ROOT

KIT = "docs/examples/react"
BIN = ROOT / "node_modules" / ".bin"


def node_tool(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    assert (BIN / command[0]).exists(), "run `make test` (it runs npm ci) first"
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "NO_COLOR": "1", "CI": "1", **env})


def test_the_hook_against_the_service(start_service) -> None:
    """Vitest (jsdom, @testing-library/react): subscribe on connect, a changed symbol list on the same
    connection, recovery after a lost connection with no trade twice or missing, close on unmount."""
    service = start_service(RECOVERY_GRACE="30")  # the default: a disconnected client's streams wait for it
    result = node_tool(["vitest", "run", "--root", KIT], SERVICE_URL=service.url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert re.search(r"Tests\s+4 passed \(4\)", output), output[-3000:]


def test_the_demo_app_builds_and_streams_in_a_browser(start_service, tmp_path: Path) -> None:
    service = start_service()
    built = tmp_path / "dist"
    result = node_tool(["vite", "build", KIT, "--outDir", str(built), "--emptyOutDir"])
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (bundle,) = (built / "assets").glob("*.js")
    assert "SERVER_SHUTTING_DOWN" in bundle.read_text(), "the bundle holds the service's client (stream.js)"
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(built))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="react-kit-static", daemon=True)
    thread.start()
    try:
        with BrowserPage(tmp_path / "browser.stderr") as page:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/?url={service.url}&symbols=BTCUSDT,ETHUSDT")
            page.wait("[...document.querySelectorAll('tbody tr')].length === 2 && [...document.querySelectorAll("
                      "'tbody tr')].every((tr) => tr.children[1].textContent !== '…' && tr.children[3].textContent)",
                      timeout=10)
            assert page.text("[role=status]") == "Connection: live"
            rows = page.eval("[...document.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map("
                             "(td) => td.textContent))")
            assert [row[0] for row in rows] == ["BTCUSDT", "ETHUSDT"]
            for _, price, change, bid, ask in rows:
                assert float(price.replace(",", "")) > 0 and change.endswith(" %")
                assert float(bid.replace(",", "")) <= float(ask.replace(",", ""))
            assert page.log()["pageErrors"] == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
