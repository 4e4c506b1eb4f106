"""GET /metrics of a running service passes `promtool check metrics` and carries what the dashboard graphs.

Prometheus accepts far more than its own linter does; promtool catches what would make the metrics awkward to
query (counters without _total, bad units in names, duplicate HELP...), on the real scrape, with samples in every
kind of family, not on a fresh registry.
"""
from __future__ import annotations

import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.clients import RecordingClient
from tests.e2e.process import ServiceProcess
from tests.helpers import wait_for

SYMBOLS = ("BTCUSDT", "XRPUSDT")
PREFIX = "websocket_streaming_"


def scrape_after_price_updates(service: ServiceProcess) -> str:
    """The /metrics text while one client is subscribed to SYMBOLS and has had price updates of each."""
    client = RecordingClient(service.url)
    try:
        client.emit("subscribe", {"symbols": list(SYMBOLS)})
        for symbol in SYMBOLS:
            client.wait("price_update", lambda update, symbol=symbol: update["symbol"] == symbol, count=2)
        response = service.get("/metrics")
    finally:
        client.close()
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return response.text


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample called `name` whose labels include `labels`."""
    matching = [s for s in found if s.name == name and labels.items() <= s.labels.items()]
    assert len(matching) == 1, f"{name}{labels}: {len(matching)} samples; have {sorted({s.name for s in found})}"
    return matching[0].value


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `make promtool` (Debian's prometheus package)"
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


def test_live_metrics_pass_promtool(service: ServiceProcess) -> None:
    text = scrape_after_price_updates(service)
    result = promtool_check(text)
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not problems, f"promtool check metrics (exit {result.returncode}):\n{problems}"


def test_live_metrics_have_the_samples_the_dashboard_graphs(service: ServiceProcess) -> None:
    found = samples(scrape_after_price_updates(service))
    build = [s for s in found if s.name == f"{PREFIX}build_info"]
    assert len(build) == 1 and build[0].value == 1 and build[0].labels.get("version"), build
    for symbol in SYMBOLS:
        assert value(found, f"{PREFIX}symbol_subscriptions", symbol=symbol) == 1
    assert value(found, f"{PREFIX}connected_clients") == 1
    assert value(found, f"{PREFIX}subscriptions") == len(SYMBOLS)
    assert value(found, f"{PREFIX}receive_to_emit_seconds_count") > 0
    assert value(found, f"{PREFIX}event_to_emit_seconds_count") > 0
    assert value(found, f"{PREFIX}event_to_emit_seconds_bucket", le="+Inf") > 0
    assert value(found, f"{PREFIX}upstream_messages_total", stream_type="ticker") > 0
    assert value(found, f"{PREFIX}updates_emitted_total") > 0
    # a WebSocket client that keeps up is written to directly (one frame built per room message)
    assert value(found, f"{PREFIX}deliveries_total", path="direct") > 0
    # the GC policy froze start-up's objects and the pauses of its collections are recorded
    assert value(found, f"{PREFIX}gc_frozen_objects") > 1000
    assert value(found, f"{PREFIX}gc_pause_seconds_count", generation="1") >= 1
    assert value(found, f"{PREFIX}upstream_connections", state="live") >= 1
    assert wait_for(lambda: value(samples(service.get("/metrics").text), f"{PREFIX}connected_clients") == 0,
                    message="connected_clients back to 0 after the client left")
