"""What bench/perf.py measured, and how it is shown: the loadgen reports merged into one row per target, the
console tables, and the generated section of docs/PERFORMANCE.md. Pure: no processes, no clock."""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.perf_storm import STORM_COLUMNS, STORM_RATIO_COLUMNS, StormResult, storm_cells, storm_ratio_cells

__all__ = ["Deliveries", "Row", "console_tables", "markdown_section", "merge_reports", "replace_section",
           "settings_note", "write_section"]


@dataclass(frozen=True)
class Deliveries:
    """Updates (price_updates or trades) whose eventTime fell in the measurement window, over every loadgen worker.

    Each update has a key, increasing per symbol: a price_update's eventTime, a trade's aggregate trade id.
    ``expected`` is, per symbol, the distinct keys of the window times the clients subscribed to it: an update
    that reached one client should have reached them all. The keys are those any client saw, plus those an
    observer of the fake's own stream saw, so an update the server passed on to nobody counts as lost too.
    ``unique`` counts each (client, symbol, key) once. ``out_of_order`` counts the deliveries whose key is older
    than the newest one their client already had for that symbol (duplicates apart).
    """

    expected: int
    received: int
    unique: int
    duplicates: int
    out_of_order: int
    latency_ms: Counter[int]
    ticks_unseen: int  # (symbol, key) pairs of the window that no client received at all
    deliveries_unseen: int  # the deliveries those ticks owed: part of ``lost``

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.unique)

    @property
    def delivered(self) -> float | None:
        """The share of the expected deliveries that arrived (each once); None when none was expected."""
        return self.unique / self.expected if self.expected else None

    def mean(self) -> float | None:
        """The mean latency in milliseconds (of whole-millisecond samples); None when empty."""
        total = sum(self.latency_ms.values())
        return sum(millis * count for millis, count in self.latency_ms.items()) / total if total else None

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0 < q <= 1) of the latency histogram, in whole milliseconds; None when empty."""
        total = sum(self.latency_ms.values())
        if total == 0:
            return None
        rank, cumulative = math.ceil(q * total), 0
        for millis in sorted(self.latency_ms):
            cumulative += self.latency_ms[millis]
            if cumulative >= rank:
                return float(millis)
        return float(max(self.latency_ms))


@dataclass
class Row:
    """One target under one scenario. Fields stay None when the phase that measures them did not run."""

    scenario: str
    target: str
    requested: int
    connected: int = 0
    subscribed: int | None = None
    window_s: float = 0.0
    deliveries: Deliveries | None = None
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    idle_bytes_per_client: float | None = None
    storm: StormResult | None = None  # the `storm` scenario's restart (bench/perf_storm.py)
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_us_per_delivery(self) -> float | None:
        if self.cpu_seconds is None or self.deliveries is None or self.deliveries.received == 0:
            return None
        return self.cpu_seconds * 1e6 / self.deliveries.received


def merge_reports(reports: Iterable[dict[str, Any]], observed: dict[str, set[int]]) -> Deliveries:
    """Merge the loadgen workers' ``report`` messages (see bench/loadgen.js) into one Deliveries; ``observed``
    holds, per symbol, the window's keys as the fake sent them to an observer of its own."""
    reports = list(reports)
    latency: Counter[int] = Counter()
    union: dict[str, set[int]] = {symbol: set() for symbol in observed}
    subscribers: Counter[str] = Counter()
    unique = 0
    for report in reports:
        latency.update({int(ms): count for ms, count in report["latency"].items()})
        for symbol, seen in report["symbols"].items():
            union.setdefault(symbol, set()).update(seen["union"])
            subscribers[symbol] += seen["subscribers"]
            unique += seen["unique"]
    unseen = {symbol: len(observed.get(symbol, set()) - times) for symbol, times in union.items()}
    return Deliveries(
        expected=sum((len(times) + unseen[symbol]) * subscribers[symbol] for symbol, times in union.items()),
        received=sum(r["received"] for r in reports),
        unique=unique,
        duplicates=sum(r["duplicates"] for r in reports),
        out_of_order=sum(r["outOfOrder"] for r in reports),
        latency_ms=latency,
        ticks_unseen=sum(n for symbol, n in unseen.items() if subscribers[symbol]),
        deliveries_unseen=sum(n * subscribers[symbol] for symbol, n in unseen.items()),
    )


# ---------------------------------------------------------------- formatting

COLUMNS = ("scenario", "target", "clients", "expected/s", "received/s", "delivered", "lost", "dup", "out of order",
           "p50 ms", "p90 ms", "p99 ms", "max ms", "CPU µs/delivery", "server cores", "RSS MB", "KB/idle client")
RATIO_COLUMNS = ("scenario", "target", "CPU/delivery ÷ reference", "p50 ms (this / ref)", "p99 ms (this / ref)",
                 "max ms (this / ref)", "RSS MB (this / ref)", "KB/idle client (this / ref)")


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _per_second(count: int | None, row: Row) -> str:
    return "-" if count is None or row.window_s <= 0 else _num(count / row.window_s)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.2f}%"


def _cells(row: Row) -> list[str]:
    d = row.deliveries
    latency = [_num(d.percentile(q)) if d else "-" for q in (0.5, 0.9, 0.99, 1.0)]
    counts = [_num(n) for n in (d.lost, d.duplicates, d.out_of_order)] if d else ["-"] * 3
    return [
        row.scenario, row.target, f"{row.connected}/{row.requested}",
        _per_second(d.expected if d else None, row), _per_second(d.received if d else None, row),
        _percent(d.delivered if d else None), *counts, *latency,
        _num(row.cpu_us_per_delivery, 1),
        _num(row.cpu_seconds / row.window_s if row.cpu_seconds is not None and row.window_s else None, 2),
        _num(None if row.rss_bytes is None else row.rss_bytes / 2**20, 1),
        _num(None if row.idle_bytes_per_client is None else row.idle_bytes_per_client / 1024, 1),
    ]


def settings_note(changed: dict[str, str]) -> str:
    """A row note naming the service settings that differ from the defaults; loopback ports show as <port>
    (they change every run)."""
    shown = [f"{key}={'<port>' if key == 'PORT' else _LOOPBACK_PORT.sub(_PORT_SHOWN, value)}"
             for key, value in sorted(changed.items())]
    return f"settings other than the defaults: {', '.join(shown) or 'none'}"


_LOOPBACK_PORT = re.compile(r"(127\.0\.0\.1:)\d+")
_PORT_SHOWN = r"\1<port>"


def _pair(this: float | None, ref: float | None, digits: int = 0) -> str:
    return f"{_num(this, digits)} / {_num(ref, digits)}"


def _ratio_cells(row: Row, ref: Row) -> list[str]:
    this_cpu, ref_cpu = row.cpu_us_per_delivery, ref.cpu_us_per_delivery
    ratio = f"{this_cpu / ref_cpu:.1f}×" if this_cpu is not None and ref_cpu else "-"
    latency = [
        _pair(row.deliveries.percentile(q) if row.deliveries else None,
              ref.deliveries.percentile(q) if ref.deliveries else None)
        for q in (0.5, 0.99, 1.0)
    ]
    mb = [None if r.rss_bytes is None else r.rss_bytes / 2**20 for r in (row, ref)]
    kb = [None if r.idle_bytes_per_client is None else r.idle_bytes_per_client / 1024 for r in (row, ref)]
    return [row.scenario, row.target, ratio, *latency, _pair(mb[0], mb[1], 1), _pair(kb[0], kb[1], 1)]


def _ratio_rows(rows: Sequence[Row], reference: str) -> list[list[str]]:
    refs = {row.scenario: row for row in rows if row.target == reference}
    return [_ratio_cells(row, refs[row.scenario]) for row in rows
            if row.target != reference and row.scenario in refs]


def _text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cells[i]) for cells in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:  # names left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), *(line(cells) for cells in body)])


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in (header, align, *body))


def _notes(rows: Sequence[Row]) -> list[str]:
    return [f"{row.scenario} / {row.target}: {note}" for row in rows for note in row.notes]


def recording_cost(rows: Sequence[Row], reference: str) -> list[str]:
    """What recording the history costs: each recorded service's CPU per delivery against the same async mode
    with HISTORY_ENABLED=false (``service-<mode>-unrecorded``), and both against the reference."""
    by_target = {(row.scenario, row.target): row for row in rows}
    lines = []
    for (scenario, target), unrecorded in by_target.items():
        if not target.endswith("-unrecorded"):
            continue
        recorded = by_target.get((scenario, target.removesuffix("-unrecorded")))
        ref = by_target.get((scenario, reference))
        on = recorded.cpu_us_per_delivery if recorded else None
        off = unrecorded.cpu_us_per_delivery
        if on is None or not off:
            continue
        versus = ""
        if ref is not None and ref.cpu_us_per_delivery:
            versus = (f"; against {reference}: {on / ref.cpu_us_per_delivery:.2f}× recorded, "
                      f"{off / ref.cpu_us_per_delivery:.2f}× unrecorded")
        lines.append(f"recording cost ({scenario}, {recorded.target if recorded else ''}): {on:.1f} µs of CPU "
                     f"per delivery recorded, {off:.1f} unrecorded: {100 * (on / off - 1):+.0f} %{versus}")
    return lines


def _storm_tables(rows: Sequence[Row], reference: str, table: Callable[..., str]) -> list[str]:
    """The restart's table and its comparison with the reference, when the rows have one."""
    stormed = [row for row in rows if row.storm is not None]
    if not stormed:
        return []
    parts = [table(STORM_COLUMNS, [storm_cells(row.scenario, row.target, row.storm) for row in stormed
                                   if row.storm is not None])]
    refs = {row.scenario: row.storm for row in stormed if row.target == reference}
    ratios = [storm_ratio_cells(row.scenario, row.target, row.storm, ref) for row in stormed
              if row.target != reference and row.storm is not None and (ref := refs.get(row.scenario)) is not None]
    if ratios:
        parts.append(table(STORM_RATIO_COLUMNS, ratios))
    return parts


def _report(head: list[str], rows: Sequence[Row], reference: str, table: Callable[..., str], notes_title: str,
            bullet: str) -> str:
    """The results table, the comparison with the reference and the notes, rendered by ``table``."""
    parts = head + [table(COLUMNS, [_cells(row) for row in rows])]
    ratios = _ratio_rows(rows, reference)
    if ratios:
        parts.append(table(RATIO_COLUMNS, ratios))
    parts.extend(recording_cost(rows, reference))
    parts.extend(_storm_tables(rows, reference, table))
    notes = _notes(rows)
    if notes:
        parts.append(notes_title + "\n".join(f"{bullet}{note}" for note in notes))
    return "\n\n".join(parts)


def console_tables(rows: Sequence[Row], reference: str) -> str:
    """The results and the side-by-side comparison with the reference, as fixed-width text."""
    return _report([], rows, reference, _text_table, "notes:\n", "  - ")


def markdown_section(title: str, context: Sequence[str], rows: Sequence[Row], reference: str) -> str:
    """The generated part of docs/PERFORMANCE.md for one scenario."""
    head = [f"### {title}", "\n".join(f"- {line}" for line in context)]
    return _report(head, rows, reference, _markdown_table, "Notes from the run:\n\n", "- ")


def replace_section(document: str, key: str, section: str) -> str:
    """``document`` with the text between this key's markers replaced by ``section`` (appended if absent), so a
    rerun of one scenario replaces its own results and leaves the others."""
    begin, end = f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->"
    block = f"{begin}\n{section}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip("\n") + "\n\n" + block + "\n"


def write_section(path: Path, key: str, section: str, header: str) -> None:
    """Regenerate one scenario's marked section of ``path`` (created with ``header`` when missing)."""
    document = path.read_text(encoding="utf-8") if path.exists() else header
    path.write_text(replace_section(document, key, section), encoding="utf-8")
