"""streaming.runtime.gc_policy: freezes on schedule, plans full collections, records every pause without locks."""
from __future__ import annotations

import gc

from metrics.collectors import ServiceMetrics
from streaming.runtime.gc_policy import GcPolicy, PauseRecorder


class FakeCollector:
    def __init__(self) -> None:
        self.callbacks: list = []
        self.calls: list[str] = []
        self.frozen = 0

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect{generation}")
        for callback in self.callbacks:
            callback("start", {"generation": generation})
            callback("stop", {"generation": generation, "collected": 0})
        return 7

    def freeze(self) -> None:
        self.calls.append("freeze")
        self.frozen = 100

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")
        self.frozen = 0

    def get_freeze_count(self) -> int:
        return self.frozen


class NoTasks:
    def start(self, target, *args):  # the test drives step() itself
        return None

    def sleep(self, seconds: float) -> None:
        pass


def policy(freeze: float, full: float):
    now = [0.0]
    collector = FakeCollector()
    metrics = ServiceMetrics()
    gc_policy = GcPolicy(NoTasks(), metrics, freeze, full, clock=lambda: now[0], collector=collector)
    return gc_policy, collector, metrics, now


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_freezes_at_start_then_every_interval_and_plans_full_collections() -> None:
    gc_policy, collector, metrics, now = policy(freeze=60, full=3600)
    gc_policy.start()
    assert collector.calls == ["collect1", "freeze"]  # young cycles are collected, not frozen
    collector.calls.clear()
    now[0] = 30
    gc_policy.step()
    assert collector.calls == []
    now[0] = 61
    gc_policy.step()
    assert collector.calls == ["collect1", "freeze"]
    collector.calls.clear()
    now[0] = 3601
    gc_policy.step()
    assert collector.calls == ["unfreeze", "collect2", "freeze"]
    assert sample(metrics, "websocket_streaming_gc_frozen_objects") == 100


def test_pauses_reach_the_histogram_by_generation() -> None:
    gc_policy, collector, metrics, now = policy(freeze=60, full=3600)
    gc_policy.start()
    now[0] = 3601
    gc_policy.step()
    assert sample(metrics, "websocket_streaming_gc_pause_seconds_count", generation="1") == 1
    assert sample(metrics, "websocket_streaming_gc_pause_seconds_count", generation="2") == 1


def test_off_means_pythons_default_collection_with_pauses_still_recorded() -> None:
    gc_policy, collector, metrics, now = policy(freeze=0, full=3600)
    gc_policy.start()
    now[0] = 99_999
    collector.collect(0)  # an automatic collection
    gc_policy.step()
    assert collector.calls == ["collect0"]
    assert sample(metrics, "websocket_streaming_gc_pause_seconds_count", generation="0") == 1
    gc_policy.stop()
    assert collector.callbacks == []


def test_the_recorder_measures_real_collections() -> None:
    recorder = PauseRecorder()
    gc.callbacks.append(recorder)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(recorder)
    pauses = recorder.drain()
    assert pauses and pauses[-1][0] == 2 and pauses[-1][1] >= 0
    assert recorder.drain() == []
