"""GET /metrics of a running service passes `promtool check metrics` and carries what the dashboard graphs.

Prometheus accepts far more than its own linter does; promtool catches what would make the metrics awkward to
query (counters without _total, bad units in names, duplicate HELP...), on the real scrape, with samples in every
kind of family, not on a fresh registry.
"""
from __future__ import annotations

import shutil
import subprocess
from itertools import product

from metrics.collectors import NAMESPACE, ServiceMetrics
from tests.e2e.clients import RecordingClient
from tests.e2e.process import ServiceProcess
from tests.helpers import wait_for
from tests.metrics_samples import metric_value, samples_of

SYMBOLS = ("BTCUSDT", "XRPUSDT")
PREFIX = NAMESPACE + "_"


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
    text = scrape_after_price_updates(service)
    build = [s for s in samples_of(text) if s.name == f"{PREFIX}build_info"]
    assert len(build) == 1 and build[0].value == 1 and build[0].labels.get("version"), build
    for symbol in SYMBOLS:
        assert metric_value(text, f"{PREFIX}symbol_subscriptions", symbol=symbol) == 1
    assert metric_value(text, f"{PREFIX}connected_clients") == 1
    assert metric_value(text, f"{PREFIX}subscriptions") == len(SYMBOLS)
    assert metric_value(text, f"{PREFIX}receive_to_emit_seconds_count") > 0
    assert metric_value(text, f"{PREFIX}event_to_emit_seconds_count") > 0
    assert metric_value(text, f"{PREFIX}event_to_emit_seconds_bucket", le="+Inf") > 0
    assert metric_value(text, f"{PREFIX}upstream_messages_total", exchange="binance", stream_type="ticker") > 0
    assert metric_value(text, f"{PREFIX}updates_emitted_total") > 0
    # a WebSocket client that keeps up is written to directly (one frame built per room message)
    assert metric_value(text, f"{PREFIX}deliveries_total", path="direct") > 0
    # the GC policy froze start-up's objects and the pauses of its collections are recorded
    assert metric_value(text, f"{PREFIX}gc_frozen_objects") > 1000
    assert metric_value(text, f"{PREFIX}gc_pause_seconds_count", generation="1") >= 1
    assert metric_value(text, f"{PREFIX}upstream_connections", exchange="binance", state="live") >= 1
    assert wait_for(lambda: metric_value(service.get("/metrics").text, f"{PREFIX}connected_clients") == 0,
                    message="connected_clients back to 0 after the client left")


# Counters a fresh service, whose upstream connected once and nobody has used yet, still has at 0 everywhere.
NOTHING_HAPPENED_YET = ("upstream_reconnects_total", "stale_detections_total", "cache_errors_total",
                        "rejected_inputs_total", "task_errors_total")


def test_a_fresh_service_exports_every_declared_label_value(service: ServiceProcess) -> None:
    """Series exist from the start (as 0), so `rate(upstream_reconnects_total[5m])` and alerts on it have
    something to evaluate on a fresh process, and the first event is an increase, not a new series."""
    found = samples_of(service.get("/metrics").text)
    declared = ServiceMetrics().bounded_labels
    assert declared
    for counter, sets in declared:
        name = counter.describe()[0].name + "_total"
        exported = {tuple(s.labels.values()): s.value for s in found if s.name == name}
        missing = set(product(*sets)) - set(exported)
        assert not missing, f"{name} has no sample for {sorted(missing)}"
        if name.removeprefix(PREFIX) in NOTHING_HAPPENED_YET:
            assert set(exported.values()) == {0.0}, f"{name}: {exported}"
    assert wait_for(lambda: metric_value(service.get("/metrics").text, f"{PREFIX}upstream_events_total",
                                         event="connected") == 1, message="the first upstream connection counted")
