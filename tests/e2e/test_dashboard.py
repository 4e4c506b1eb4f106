"""The dashboard at /, in headless Chromium (playwright-core with Debian's chromium) against the service and the
fake exchange: it fills and moves, adds and removes symbols, shows the service's errors, follows upstream outages
and service restarts (recovering what it missed), passes axe-core, and is served offline with a strict CSP.
Screenshots go to TEST_ARTIFACTS (default .artifacts/ in the checkout)."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from streaming.dashboard.routes import CONTENT_SECURITY_POLICY, STATIC
from tests.e2e.browser import BrowserPage
from tests.e2e.process import ROOT, free_port
from tests.fakes.binance import FakeBinance
from tests.helpers import wait_for

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / ".artifacts"))
TOKEN = "dashboard-test-token-0123456789"


def rows_filled(count: int) -> str:
    return f"document.querySelectorAll('#prices td.price[data-price]').length === {count}"


def prices(page: BrowserPage) -> dict[str, float]:
    return page.eval("Object.fromEntries([...document.querySelectorAll('#prices tbody tr')].map((tr) => "
                     "[tr.dataset.symbol, Number(tr.querySelector('td.price').dataset.price)]))")


def row_state(symbol: str) -> str:
    return f"document.querySelector('#prices tr[data-symbol=\"{symbol}\"] td.state').dataset.state"


def events_log(page: BrowserPage) -> list[str]:
    """The page's stream events, oldest first."""
    return page.eval("[...document.querySelectorAll('#events li span')].map((s) => s.textContent).reverse()")


def screenshot(page: BrowserPage, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.call("screenshot", path=str(path))
    assert path.stat().st_size > 10_000
    return path


def assert_clean(page: BrowserPage) -> None:
    """No script error and no console error (a CSP violation or a failed load would be one)."""
    log = page.log()
    assert log["pageErrors"] == [] and log["consoleErrors"] == [], (log["pageErrors"], log["consoleErrors"])
    assert all(url.startswith("http://127.0.0.1:") for url in log["requests"]), "nothing from outside the service"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserPage]:
    with BrowserPage(tmp_path / "browser.stderr") as page:
        yield page


def drawn(shown: dict[str, Any]) -> dict[str, Any] | None:
    """The page's snapshot if each row shows its last price_update (none waits for its frame), else None."""
    return shown if all(row["price"] == row["ticker"]["price"] for row in shown["rows"].values()) else None


def test_table_fills_within_5_s_prices_change_and_the_tape_and_health_show(
        start_service, fake_binance: FakeBinance, browser: BrowserPage) -> None:
    service = start_service()
    assert browser.goto(f"{service.url}/?symbols=BTCUSDT,ETHUSDT") == 200
    browser.wait(rows_filled(2), timeout=5)
    first = prices(browser)
    browser.wait(f"(() => {{ const first = {json.dumps(first)}; return [...document.querySelectorAll("
                 "'#prices tbody tr')].every((tr) => Number(tr.querySelector('td.price').dataset.price) !== "
                 "first[tr.dataset.symbol]); })()", timeout=10)
    browser.wait("document.querySelector('#prices td.price.flash-up, #prices td.price.flash-down')", timeout=5)
    assert browser.eval("getComputedStyle(document.querySelector('#prices td.price.flash-up, "
                        "#prices td.price.flash-down')).animationName").startswith("flash-")
    browser.wait("document.querySelectorAll('#tape tbody tr').length >= 5", timeout=10)
    browser.wait("document.getElementById('latency').textContent.startsWith('p50')", timeout=5)
    browser.wait("document.getElementById('ops-status').dataset.status === 'healthy'", timeout=10)
    browser.wait("document.getElementById('ops-clients').textContent.startsWith('1 (')", timeout=10)
    # The page renders on animation frames: a price_update that just arrived is in row.ticker before it is drawn.
    # Read until a snapshot was taken with every row drawn (a few frames at most).
    shown = wait_for(lambda: drawn(browser.eval("""(() => {
        const rows = {};
        for (const [symbol, row] of window.dashboard.rows) {
          const cells = row.tr.querySelectorAll('td');
          rows[symbol] = { ticker: row.ticker, book: row.book, price: Number(cells[1].dataset.price),
                           text: [...cells].map((td) => td.textContent),
                           spark: row.tr.querySelector('polyline').getAttribute('points').split(' ').length };
        }
        return { rows, tape: window.dashboard.tape,
                 tapeIds: [...document.querySelectorAll('#tape tbody tr')].map((tr) => Number(tr.dataset.id)),
                 connection: document.getElementById('connection').dataset.state,
                 latency: document.getElementById('latency').textContent,
                 clients: document.getElementById('ops-clients').textContent,
                 upstream: document.getElementById('ops-upstream').textContent,
                 selected: document.getElementById('tape-symbol').textContent };
    })()""")), timeout=5, interval=0.05, message="every row drawn with its last price_update")
    assert shown["connection"] == "live" and shown["selected"] == "BTCUSDT"
    for symbol in ("BTCUSDT", "ETHUSDT"):
        row = shown["rows"][symbol]
        assert row["price"] == row["ticker"]["price"] > 0, "the price shown is the last price_update"
        assert row["ticker"]["eventTime"] in fake_binance.ticker_event_times(symbol), "a ticker the exchange sent"
        assert row["text"][0] == symbol and row["text"][1].lstrip("▲▼").replace(",", "")
        assert row["text"][2].endswith(" %") and all(row["text"][i] for i in (3, 4, 5))
        assert row["book"]["bid"] <= row["book"]["ask"]
        assert row["text"][7].replace(",", "") and row["text"][8].replace(",", "")
        assert row["spark"] >= 2, "the sparkline is drawn"
        assert row["text"][9] == "live"
    # the tape: the last trades from /trades when it opened, then the live ones: each once, newest first, as the
    # exchange sent them
    known = {trade["a"]: (float(trade["p"]), float(trade["q"])) for trade in fake_binance.trades_sent("BTCUSDT")}
    known.update({trade["id"]: (trade["price"], trade["quantity"])
                  for trade in service.get("/trades/BTCUSDT?limit=1000").json()["data"]})
    ids = shown["tapeIds"]
    assert ids == sorted(set(ids), reverse=True) and len(ids) >= 5
    assert ids[0] in {trade["a"] for trade in fake_binance.trades_sent("BTCUSDT")}, "live trades on top"
    for trade in shown["tape"]:
        assert known[trade["id"]] == (trade["price"], trade["quantity"]), trade
    assert re.fullmatch(r"p50 -?\d+ ms · p99 -?\d+ ms \(\d+ updates in the last minute\)", shown["latency"])
    assert shown["clients"].startswith("1 ") and shown["upstream"].endswith("(binance)")
    screenshot(browser, "dashboard.png")
    assert_clean(browser)


def test_adding_a_symbol_streams_it_an_unknown_one_shows_the_service_error_and_removing_unsubscribes(
        start_service, browser: BrowserPage) -> None:
    service = start_service()
    browser.goto(f"{service.url}/?symbols=BTCUSDT")
    browser.wait(rows_filled(1), timeout=5)
    available = service.get("/symbols").json()["data"]["available_symbols"]
    assert browser.eval("document.querySelectorAll('#symbol-list option').length") == len(available)
    browser.call("fill", selector="#add-symbol", value="solusdt")
    browser.call("press", selector="#add-symbol", key="Enter")
    browser.wait(rows_filled(2), timeout=5)
    browser.wait("document.querySelector('#prices tr[data-symbol=\"SOLUSDT\"] td.bid').textContent !== ''", timeout=5)
    browser.call("fill", selector="#add-symbol", value="NOTACOINUSDT")
    browser.call("press", selector="#add-symbol", key="Enter")
    browser.wait("document.getElementById('add-error').textContent !== ''", timeout=5)
    log = browser.log()
    errors = [data for event, data in log["received"] if event == "error"]
    assert [e["code"] for e in errors] == ["UNKNOWN_SYMBOL"] and errors[0]["symbols"] == ["NOTACOINUSDT"]
    assert browser.text("#add-error") == errors[0]["message"], "the service's own words"
    assert "GET /symbols" in errors[0]["message"]
    assert sorted(prices(browser)) == ["BTCUSDT", "SOLUSDT"], "the unknown symbol's row is gone"
    browser.call("click", selector="button[aria-label='Remove SOLUSDT']")
    browser.wait("!document.querySelector('#prices tr[data-symbol=\"SOLUSDT\"]')", timeout=5)
    sent = browser.log()["sent"]
    assert ["unsubscribe", {"symbols": ["SOLUSDT"], "streams": ["ticker", "book"]}] in sent
    assert browser.eval("window.dashboard.stream.wanted()") == {"BTCUSDT": ["ticker", "trade", "book"]}
    assert browser.text("#add-error") == "", "a new action clears the old error"
    assert_clean(browser)


def test_an_upstream_outage_shows_reconnecting_then_live(
        start_service, fake_binance: FakeBinance, browser: BrowserPage) -> None:
    service = start_service()
    browser.goto(f"{service.url}/?symbols=BTCUSDT")
    browser.wait(rows_filled(1), timeout=5)
    browser.wait(f"{row_state('BTCUSDT')} === 'live'", timeout=5)
    fake_binance.refuse_connections(3)
    fake_binance.drop_all()
    browser.wait(f"{row_state('BTCUSDT')} === 'reconnecting'", timeout=10)
    browser.wait(f"{row_state('BTCUSDT')} === 'live'", timeout=20)
    shown = events_log(browser)
    assert shown.index("BTCUSDT reconnecting") < shown.index("BTCUSDT live"), shown
    statuses = [data for event, data in browser.log()["received"] if event == "stream_status"]
    assert [s["state"] for s in statuses] == ["reconnecting", "live"], statuses
    assert browser.eval("document.getElementById('connection').dataset.state") == "live", "the page stayed connected"
    assert_clean(browser)


def test_a_service_restart_shows_reconnecting_then_recovered(start_service, browser: BrowserPage) -> None:
    port = str(free_port())
    first = start_service(PORT=port, RECOVERY_GRACE="30")
    browser.goto(f"{first.url}/?symbols=BTCUSDT,ETHUSDT")
    browser.wait(rows_filled(2), timeout=5)
    # live updates on every channel first: a trade channel with nothing recorded yet has nothing to recover from
    # (the trades of the restart's downtime could not be fetched back without a last trade id)
    browser.wait("['ticker:BTCUSDT', 'trade:BTCUSDT', 'book:BTCUSDT', 'ticker:ETHUSDT', 'book:ETHUSDT'].every("
                 "(key) => (window.dashboard.stream.positions[key] || {}).offset > 1)", timeout=10)
    assert first.stop() == 0  # SIGTERM: the graceful shutdown a deploy does
    browser.wait("document.getElementById('connection').dataset.state === 'reconnecting'", timeout=10)
    start_service(PORT=port, RECOVERY_GRACE="30")
    browser.wait("document.getElementById('recovery').dataset.outcome === 'recovered'", timeout=30)
    assert browser.text("#recovery").startswith("reconnected at ")
    assert "recovered 5 channels" in browser.text("#recovery"), browser.text("#recovery")
    received = browser.log()["received"]
    answers = [data for event, data in received if event == "subscribed"]
    assert all(answer["recovered"] == {} for answer in answers[:2]), "the first connection: nothing to recover"
    again = {channel: ok for answer in answers[2:] for channel, ok in answer["recovered"].items()}
    assert again == dict.fromkeys(["ticker:BTCUSDT", "book:BTCUSDT", "trade:BTCUSDT", "ticker:ETHUSDT",
                                   "book:ETHUSDT"], True)
    assert any(event == "server_shutdown" for event, _ in received)
    browser.wait("document.querySelectorAll('#tape tbody tr').length >= 6", timeout=10)
    ids = browser.eval("[...document.querySelectorAll('#tape tbody tr')].map((tr) => Number(tr.dataset.id))")
    assert ids == sorted(set(ids), reverse=True)
    assert not [line for line in events_log(browser) if "duplicate" in line or "gap" in line]
    screenshot(browser, "dashboard-recovered.png")
    assert browser.log()["pageErrors"] == []


def test_accessibility_keyboard_and_reduced_motion(start_service, tmp_path: Path) -> None:
    service = start_service()
    with BrowserPage(tmp_path / "browser.stderr", reducedMotion="reduce") as page:
        page.goto(f"{service.url}/?symbols=BTCUSDT,ETHUSDT")
        page.wait(rows_filled(2), timeout=5)
        page.wait("document.querySelectorAll('#tape tbody tr').length >= 3", timeout=10)
        page.wait("document.getElementById('ops-status').dataset.status !== ''", timeout=10)
        violations = page.call("axe")
        serious = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert serious == [], json.dumps(serious, indent=1)
        # no motion: a price change is shown by its arrow and colour, without the flash animation
        page.wait("document.querySelector('#prices td.price.flash-up, #prices td.price.flash-down')", timeout=5)
        assert page.eval("getComputedStyle(document.querySelector('#prices td.price.flash-up, "
                         "#prices td.price.flash-down')).animationName") == "none"
        assert page.eval("document.querySelector('#prices td.price .arrow').textContent") in ("▲", "▼")
        # keyboard only: Tab to the symbol field, type, Enter; Tab on to the ETHUSDT button, Enter selects it
        focused = []
        for _ in range(15):
            page.call("key", key="Tab")
            focused.append(page.eval("document.activeElement.id || document.activeElement.getAttribute('aria-label')"))
            if focused[-1] == "add-symbol":
                break
        assert focused[-1] == "add-symbol", focused
        page.call("key", key="X")
        for key in "RPUSDT":
            page.call("key", key=key)
        page.call("key", key="Enter")
        page.wait(rows_filled(3), timeout=5)
        for _ in range(10):
            page.call("key", key="Tab")
            if page.eval("document.activeElement.getAttribute('aria-label')") == "ETHUSDT: show its trades":
                break
        page.call("key", key="Enter")
        page.wait("document.getElementById('tape-symbol').textContent === 'ETHUSDT'", timeout=5)
        page.wait("window.dashboard.tape.length > 0 && window.dashboard.tape.every((t) => t.symbol === 'ETHUSDT')",
                  timeout=10)
        assert page.eval("document.querySelector('#prices tr[data-symbol=\"ETHUSDT\"] button.symbol')"
                         ".getAttribute('aria-pressed')") == "true"
        assert page.log()["pageErrors"] == []


def test_with_authentication_the_page_asks_for_the_token_and_then_streams_with_it(
        start_service, tmp_path: Path) -> None:
    service = start_service(AUTH_TOKENS=TOKEN, PROTECT_OPS_ENDPOINTS="true",
                            CORS_ALLOWED_ORIGINS="https://dash.example.com")  # the page is on the service's own
    refused = service.get("/")
    assert refused.status_code == 401 and refused.headers["Content-Type"].startswith("text/html")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert '<input id="token" name="token" type="password"' in refused.text
    assert "authentication required" in refused.text
    assert "invalid token" in service.get("/?token=wrong").text
    assert service.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert service.get("/dashboard/dashboard.js").status_code == 200, "the assets hold no data"
    with BrowserPage(tmp_path / "browser.stderr") as page:
        page.goto(f"{service.url}/?token=wrong&symbols=BTCUSDT")
        assert page.eval("document.querySelector('form').getAttribute('action')") == "/"
        page.call("fill", selector="#token", value=TOKEN)
        page.call("press", selector="#token", key="Enter")  # the form opens /?token=...: the default symbols
        page.wait("document.querySelectorAll('#prices td.price[data-price]').length >= 1", timeout=10)
        # /stats needs the token too (PROTECT_OPS_ENDPOINTS): the page sends it, so the subscriptions show
        page.wait("document.getElementById('ops-clients').textContent.includes('subscriptions')", timeout=10)
        assert page.eval("document.getElementById('connection').dataset.state") == "live"


def test_served_offline_with_a_strict_policy_and_off_when_disabled(start_service) -> None:
    service = start_service()
    page = service.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith("/dashboard/") or src == "data:,", f"{src}: the page loads only the service's files"
    for name, kind in (("dashboard.js", "javascript"), ("stream.js", "javascript"), ("dashboard.css", "css"),
                       ("vendor/socket.io.esm.min.js", "javascript")):
        asset = service.get(f"/dashboard/{name}")
        assert asset.status_code == 200 and kind in asset.headers["Content-Type"], name
    for bad in ("/dashboard/../app.py", "/dashboard/%2e%2e/config.py", "/dashboard/nothing.js", "/dashboard/"):
        assert requests.get(service.url + bad, timeout=5).status_code == 404, bad
    off = start_service(DASHBOARD_ENABLED="false")
    assert off.get("/").status_code == 404 and off.get("/").json()["code"] == "NOT_FOUND"
    assert off.get("/dashboard/dashboard.js").status_code == 404


def test_the_vendored_socket_io_client_is_the_installed_one() -> None:
    """The page's socket.io-client is the npm package's own ESM build, byte for byte, with its licence: after
    changing socket.io-client in package.json, copy node_modules/socket.io-client/dist/socket.io.esm.min.js and
    its LICENSE to streaming/dashboard/static/vendor/."""
    package = ROOT / "node_modules" / "socket.io-client"
    vendored = STATIC / "vendor"
    assert (vendored / "socket.io.esm.min.js").read_bytes() == (package / "dist" / "socket.io.esm.min.js").read_bytes()
    assert (vendored / "socket.io-client.LICENSE").read_bytes() == (package / "LICENSE").read_bytes()
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]["socket.io-client"]
    assert f"Socket.IO v{wanted}\n" in (vendored / "socket.io.esm.min.js").read_text()
