"""bench/perf_report.py: the loadgen workers' reports merged into one row, and the tables and notes showing it."""
from __future__ import annotations

import re
from typing import Any

from bench.perf_report import Row, console_tables, markdown_section, merge_reports, settings_note

REFERENCE = "reference"


def report(**changes: Any) -> dict[str, Any]:
    """One loadgen worker's report (bench/loadgen.js `report()`): one client of BTCUSDT."""
    return {"received": 4, "duplicates": 1, "outOfOrder": 0, "latency": {"3": 4},
            "symbols": {"BTCUSDT": {"subscribers": 1, "unique": 3, "union": [1, 2, 3]}}, **changes}


def cell(text: str, column: str, markdown: bool = False) -> str:
    """The first row's cell under `column` in the first table of a console text or a Markdown section."""
    if markdown:
        lines = [line for line in text.splitlines() if line.startswith("|")]
        header, body = ([c.strip() for c in line.strip("|").split("|")] for line in (lines[0], lines[2]))
    else:  # fixed width: cells are separated by two or more spaces
        header, body = (re.split(r"\s{2,}", line.strip()) for line in text.splitlines()[:2])
    return body[header.index(column)]


def test_out_of_order_deliveries_are_summed_and_shown_beside_duplicates() -> None:
    deliveries = merge_reports([report(outOfOrder=2), report(outOfOrder=1)], {"BTCUSDT": {1, 2, 3}})
    assert (deliveries.out_of_order, deliveries.duplicates, deliveries.lost) == (3, 2, 0)
    row = Row("fanout", "service-eventlet", 2, connected=2, subscribed=2, window_s=1.0, deliveries=deliveries)
    console = console_tables([row], REFERENCE)
    markdown = markdown_section("Scenario", ["a run"], [row], REFERENCE)
    for text, is_markdown in ((console, False), (markdown, True)):
        assert (cell(text, "dup", is_markdown), cell(text, "out of order", is_markdown)) == ("2", "3")


def test_a_row_without_deliveries_shows_dashes() -> None:
    row = Row("idle", "service-gevent", 10, connected=10)
    assert cell(console_tables([row], REFERENCE), "out of order") == "-"


def test_settings_note_names_each_setting_with_ports_hidden() -> None:
    note = settings_note({"PORT": "40123", "BINANCE_WS_URL": "ws://127.0.0.1:39999", "HOST": "127.0.0.1"})
    assert note == ("settings other than the defaults: BINANCE_WS_URL=ws://127.0.0.1:<port>, HOST=127.0.0.1, "
                    "PORT=<port>")
    assert settings_note({}) == "settings other than the defaults: none"


def test_the_cost_of_recording_is_printed_against_the_unrecorded_service_and_the_reference() -> None:
    deliveries = merge_reports([report()], {"BTCUSDT": {1, 2, 3}})
    cpu = {"service-eventlet": 1.1e-5, "service-eventlet-unrecorded": 1e-5, REFERENCE: 2e-5}
    rows = [Row("fanout", target, 2, connected=2, subscribed=2, window_s=1.0, deliveries=deliveries,
                cpu_seconds=seconds) for target, seconds in cpu.items()]
    (line,) = [line for line in console_tables(rows, REFERENCE).splitlines() if line.startswith("recording cost")]
    per = deliveries.received
    assert f"{11 / per:.1f} µs of CPU per delivery recorded, {10 / per:.1f} unrecorded: +10 %" in line, line
    assert "0.55× recorded, 0.50× unrecorded" in line, line
    assert "recording cost" not in console_tables(rows[:1] + rows[2:], REFERENCE), "nothing to compare"


def test_the_redis_hop_is_the_clusters_latency_against_one_processs_at_the_mean_p50_and_p99() -> None:
    from bench.perf import note_hop
    single = merge_reports([report(latency={"3": 3, "9": 1})], {"BTCUSDT": {1, 2, 3}})
    hopped = merge_reports([report(latency={"5": 3, "10": 1})], {"BTCUSDT": {1, 2, 3}})
    rows = [Row("hop", target, 4, connected=4, subscribed=4, window_s=1.0, deliveries=deliveries)
            for target, deliveries in (("cluster-eventlet", hopped), ("service-eventlet", single))]
    note_hop(rows)
    assert rows[0].notes == ["against one process (ROLE=all) with one gateway's 4 clients, the cluster's "
                             "eventTime-to-client latency differs by +1.8 ms at mean, +2.0 ms at p50, +1.0 ms at p99"]
    assert rows[1].notes == []
