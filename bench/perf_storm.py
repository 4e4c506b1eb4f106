"""The `storm` scenario's figures: a restart the way a deploy does it (SIGTERM, then a new process on the same
port) under connected, subscribed clients, and how long their own reconnection took to bring them back.

Pure: the loadgen workers' ``storm-report`` messages (bench/loadgen.js --reconnect) merged into one StormResult,
and its table cells. The driver (bench/perf.py) adds what it read off the processes: when the old one exited, when
the new one was ready, the new one's peak RSS and CPU.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STORM_COLUMNS", "STORM_RATIO_COLUMNS", "ProcessSample", "StormResult", "merge_storm_reports",
           "nearest_rank", "storm_cells", "storm_ratio_cells"]


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of ``values`` by the nearest-rank method; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


@dataclass(frozen=True)
class ProcessSample:
    """One reading of the new server process during the storm: seconds after t0, its RSS and CPU seconds."""

    at: float
    rss_bytes: int
    cpu_seconds: float


@dataclass
class StormResult:
    """The restart as the clients saw it. ``live_ms`` and ``back_ms`` hold, per client subscribed before the
    restart, the ms from t0 (the SIGTERM) until its first live update (on a connection made after t0, with an
    eventTime at or after t0; a recovered update counts) and until its `subscribe` was acknowledged again; None
    when that never happened within the limit (``live_ms`` None: lost for good). ``first_age_ms``: per client
    that got one, the age on receipt (receipt time minus eventTime) of its first update on the new connection that
    was sent live, not recovered: the latest ticker sent on subscribe, or the next tick."""

    clients: int
    live_ms: list[float | None]
    back_ms: list[float | None]
    first_age_ms: list[float]
    refused: Counter[str]
    attempts: int
    recovered_updates: int
    recovered_channels: int
    unrecovered_channels: int
    missed: int
    repeated: int
    epoch_changed: int
    closed_ms: list[float] = field(default_factory=list)  # each connection's end after t0
    failed_ms: list[float] = field(default_factory=list)  # each failed reconnection attempt after t0
    connected_ms: list[float] = field(default_factory=list)  # each Socket.IO connect after t0
    silent_workers: int = 0
    exited_s: float | None = None  # the old process had exited (seconds after t0)
    ready_s: float | None = None  # the new one answered /ready
    samples: list[ProcessSample] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(1 for ms in self.live_ms if ms is None)

    def live_at(self, share: float) -> float | None:
        """Seconds after t0 until ``share`` of the clients had a live update again; None if fewer ever did."""
        needed = math.ceil(share * self.clients)
        done = sorted(ms for ms in self.live_ms if ms is not None)
        if needed == 0 or len(done) < needed:
            return None
        return done[needed - 1] / 1000

    def first_age(self, q: float) -> float | None:
        return nearest_rank(self.first_age_ms, q)

    @property
    def peak_rss_bytes(self) -> int | None:
        return max((s.rss_bytes for s in self.samples), default=None)

    @property
    def peak_cores(self) -> float | None:
        """The most cores the new process used between two consecutive readings."""
        rates = [(b.cpu_seconds - a.cpu_seconds) / (b.at - a.at) for a, b in zip(self.samples, self.samples[1:])
                 if b.at > a.at]
        return max(rates, default=None)

    def cpu_until(self, seconds: float | None) -> float | None:
        """CPU seconds the new process had used by its first reading at or after ``seconds`` after t0."""
        if seconds is None:
            return None
        return next((s.cpu_seconds for s in self.samples if s.at >= seconds), None)


def merge_storm_reports(reports: Iterable[dict[str, Any]], silent_workers: int = 0) -> StormResult:
    """One StormResult from every worker's ``storm-report`` (see bench/loadgen.js stormReport)."""
    reports = list(reports)
    refused: Counter[str] = Counter()
    for report in reports:
        refused.update(report["refused"])
    return StormResult(
        clients=sum(r["clients"] for r in reports),
        live_ms=[ms for r in reports for ms in r["live"]],
        back_ms=[ms for r in reports for ms in r["back"]],
        first_age_ms=[ms for r in reports for ms in r["firstAge"]],
        refused=refused,
        attempts=sum(r["attempts"] for r in reports),
        recovered_updates=sum(r["recovered"] for r in reports),
        recovered_channels=sum(r["recoveredChannels"]["true"] for r in reports),
        unrecovered_channels=sum(r["recoveredChannels"]["false"] for r in reports),
        missed=sum(r["missed"] for r in reports),
        repeated=sum(r["repeated"] for r in reports),
        epoch_changed=sum(r["epochChanged"] for r in reports),
        closed_ms=[ms for r in reports for ms in r.get("closedAt", ())],
        failed_ms=[ms for r in reports for ms in r.get("failedAt", ())],
        connected_ms=[ms for r in reports for ms in r.get("connectedAt", ())],
        silent_workers=silent_workers,
    )


def per_second(ms: Iterable[float], seconds: int) -> list[int]:
    """How many of ``ms`` (ms after t0) fell in each second 0..seconds-1 after t0; the last counts the rest."""
    counts = [0] * seconds
    for value in ms:
        counts[min(seconds - 1, max(0, int(value // 1000)))] += 1
    return counts


def timeline(storm: StormResult, seconds: int = 30) -> str:
    """Per second after t0: connections closed, reconnection attempts failed, Socket.IO connects, clients
    subscribed again and clients live again (c/f/o/s/l), for the seconds with any: where a restart's time goes
    (the old process's closing, the dead port, the clients' backoff, the new process's pace)."""
    columns = [per_second(storm.closed_ms, seconds), per_second(storm.failed_ms, seconds),
               per_second(storm.connected_ms, seconds),
               per_second([ms for ms in storm.back_ms if ms is not None], seconds),
               per_second([ms for ms in storm.live_ms if ms is not None], seconds)]
    cells = [f"{second}s {'/'.join(map(str, counts))}" for second, counts in enumerate(zip(*columns)) if any(counts)]
    return "; ".join(cells)


# ---------------------------------------------------------------- formatting

STORM_COLUMNS = ("scenario", "target", "clients", "old exited s", "new ready s", "live 50% s", "live 99% s",
                 "live 100% s", "lost", "first live update age p50/p99 ms", "peak RSS MB", "peak cores",
                 "CPU s to 100%", "recovered (updates / channels)", "missed", "repeated")
STORM_RATIO_COLUMNS = ("scenario", "target", "live 99% ÷ reference", "live 100% ÷ reference",
                       "first live update age p99 ÷ reference", "peak RSS ÷ reference")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _count(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def storm_cells(scenario: str, target: str, storm: StormResult) -> list[str]:
    ages = [storm.first_age(q) for q in (0.5, 0.99)]
    peak = storm.peak_rss_bytes
    return [
        scenario, target, f"{storm.clients:,}", _seconds(storm.exited_s), _seconds(storm.ready_s),
        *(_seconds(storm.live_at(share)) for share in (0.5, 0.99, 1.0)), f"{storm.lost:,}",
        f"{_count(ages[0])} / {_count(ages[1])}", _count(None if peak is None else peak / 2**20, 1),
        _count(storm.peak_cores, 2), _count(storm.cpu_until(storm.live_at(1.0)), 1),
        f"{storm.recovered_updates:,} / {storm.recovered_channels:,}", f"{storm.missed:,}", f"{storm.repeated:,}",
    ]


def _ratio(this: float | None, ref: float | None) -> str:
    return "-" if this is None or not ref else f"{this / ref:.2f}×"


def storm_ratio_cells(scenario: str, target: str, storm: StormResult, ref: StormResult) -> list[str]:
    return [
        scenario, target, _ratio(storm.live_at(0.99), ref.live_at(0.99)), _ratio(storm.live_at(1.0), ref.live_at(1.0)),
        _ratio(storm.first_age(0.99), ref.first_age(0.99)),
        _ratio(storm.peak_rss_bytes, ref.peak_rss_bytes),
    ]
