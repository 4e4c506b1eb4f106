"""docs/grafana-dashboard.json queries only metrics the service exposes, covers all of them, and imports cleanly.

A misspelled metric name in a PromQL expression is not an error anywhere: the panel just stays empty, and an
operator finds out during an incident. So the names are checked here against a fresh ServiceMetrics' exposition.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from metrics.collectors import NAMESPACE, ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
METRIC_NAME = re.compile(rf"\b{NAMESPACE}_[a-z0-9_]+")
VARIABLE = re.compile(r"\$(?:\{(\w+)[^}]*\}|(\w+))")
GRAFANA_GLOBALS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s", "__all"}
GRID_WIDTH = 24

# What a `# TYPE <name> <type>` family is scraped as, in the text format prometheus_client writes.
SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}

Dashboard = dict[str, Any]
Panel = dict[str, Any]


def load_dashboard() -> Dashboard:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: Dashboard) -> Iterator[Panel]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: Dashboard) -> Iterator[Panel]:
    return (panel for panel in panels(dashboard) if panel["type"] != "row")


def expressions(dashboard: Dashboard) -> Iterator[str]:
    for panel in query_panels(dashboard):
        for target in panel.get("targets", []):
            yield target.get("expr", "")


def used_names(dashboard: Dashboard) -> set[str]:
    return {name for expr in expressions(dashboard) for name in METRIC_NAME.findall(expr)}


def exposition() -> str:
    return generate_latest(ServiceMetrics().registry).decode()


def families(text: str) -> dict[str, str]:
    """Family name -> type from the ``# TYPE`` lines, without the ``_created`` companions of counters and
    histograms (timestamps nobody graphs; prometheus_client writes them as families of their own)."""
    declared = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    parents = {name.removesuffix("_total") for name, kind in declared.items() if kind == "counter"}
    parents |= {name for name, kind in declared.items() if kind in SERIES_SUFFIXES}
    return {name: kind for name, kind in declared.items()
            if not (name.endswith("_created") and name.removesuffix("_created") in parents)}


def series_names(name: str, kind: str) -> set[str]:
    """The sample names a family has once it has children: labelled metrics without any show TYPE only."""
    return {name + suffix for suffix in SERIES_SUFFIXES.get(kind, ("",))}


def exposed_names(text: str) -> set[str]:
    samples = {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
    return samples.union(*(series_names(name, kind) for name, kind in families(text).items()))


def unknown_names(dashboard: Dashboard, text: str) -> set[str]:
    return used_names(dashboard) - exposed_names(text)


def unused_families(dashboard: Dashboard, text: str) -> set[str]:
    used = used_names(dashboard)
    return {name for name, kind in families(text).items() if not series_names(name, kind) & used}


# --- the metric names --------------------------------------------------------------------------------------


def test_every_queried_metric_is_exposed_by_the_service() -> None:
    dashboard = load_dashboard()
    assert used_names(dashboard), "no websocket_streaming_ metric found in any panel expression"
    assert unknown_names(dashboard, exposition()) == set()


def test_every_metric_family_has_a_panel() -> None:
    text = exposition()
    assert len(families(text)) >= 25, sorted(families(text))  # the parsing found the families at all
    assert unused_families(load_dashboard(), text) == set()


def test_histograms_are_shown_as_quantiles() -> None:
    text = exposition()
    quantile_exprs = [expr for expr in expressions(load_dashboard()) if "histogram_quantile" in expr]
    for name, kind in families(text).items():
        if kind == "histogram":
            for quantile in ("0.5", "0.9", "0.99"):
                assert any(f"histogram_quantile({quantile}," in expr and f"{name}_bucket" in expr
                           for expr in quantile_exprs), f"{name}: no p{quantile[2:]} panel"


def test_build_info_is_queried_by_its_exposed_name() -> None:
    """Info('x_build') is scraped as x_build_info; the version panel must use that name."""
    assert f"{NAMESPACE}_build_info" in used_names(load_dashboard())


@pytest.mark.parametrize("typo", ["websocket_streaming_conected_clients", "websocket_streaming_upstream_messages",
                                  "websocket_streaming_event_to_emit_seconds_buckets"])
def test_a_misspelled_name_is_caught(typo: str) -> None:
    """The checks above really fail on a typo (also one that drops _total or adds a suffix)."""
    dashboard = copy.deepcopy(load_dashboard())
    panel = next(query_panels(dashboard))
    panel["targets"][0]["expr"] = f"sum({typo})"
    assert unknown_names(dashboard, exposition()) == {typo}


def test_a_family_without_a_panel_is_caught() -> None:
    dashboard = copy.deepcopy(load_dashboard())
    for panel in query_panels(dashboard):
        for target in panel["targets"]:
            target["expr"] = target["expr"].replace(f"{NAMESPACE}_receive_to_emit_seconds", "missing")
    assert unused_families(dashboard, exposition()) == {f"{NAMESPACE}_receive_to_emit_seconds"}


# --- the dashboard's structure ------------------------------------------------------------------------------


def test_dashboard_header_is_importable() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "id" not in dashboard or dashboard["id"] is None, "a fixed id would clash on import"


def test_datasource_is_a_prometheus_variable() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    source = variables["DS_PROMETHEUS"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in panels(load_dashboard())]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids


def test_every_panel_queries_prometheus_through_the_variable() -> None:
    for panel in query_panels(load_dashboard()):
        title = panel.get("title")
        assert title, panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, title
        targets = panel.get("targets") or []
        assert targets and all(target.get("expr", "").strip() for target in targets), title
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), title


def test_expressions_use_only_defined_variables() -> None:
    dashboard = load_dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_GLOBALS
    for expr in expressions(dashboard):
        used = {braced or bare for braced, bare in VARIABLE.findall(expr)}
        assert used <= defined, expr
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr


def test_panels_have_a_grid_position_inside_the_grid_and_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(load_dashboard()):
        pos = panel["gridPos"]
        assert all(isinstance(pos.get(key), int) for key in ("h", "w", "x", "y")), panel["title"]
        assert pos["h"] > 0 and pos["w"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]
