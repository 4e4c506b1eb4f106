"""Reading a Prometheus exposition in tests: parsed samples and their values, never substrings of the text.

A substring test of ``/metrics`` also matches the ``# HELP`` and ``# TYPE`` lines, and a sample of any value;
these helpers parse the text (prometheus_client's parser) and return numbers to compare, e.g. before and after
the event that should move them: ``metric_value(text, "websocket_streaming_rejected_inputs_total",
code="MALFORMED_PACKET")``.
"""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["samples_of", "metric_value", "label_values"]


def samples_of(text: str) -> list[Sample]:
    """Every sample of an exposition (``_total``, ``_bucket``, ``_created``... under their own names)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample called `name` (with its suffix, e.g. ``..._total``) whose labels include
    `labels`. Raises AssertionError, naming what is there, when no sample or more than one matches."""
    found = samples_of(text)
    matching = [s for s in found if s.name == name and labels.items() <= s.labels.items()]
    if len(matching) != 1:
        same_name = [s.labels for s in found if s.name == name]
        raise AssertionError(f"{name}{labels or ''}: {len(matching)} matching samples; "
                             + (f"{name} has {same_name}" if same_name else f"no sample is called {name}"))
    return matching[0].value


def label_values(text: str, name: str, label: str) -> dict[str, float]:
    """``{value of label: sample value}`` over the samples called `name` (a counter with one label)."""
    return {s.labels[label]: s.value for s in samples_of(text) if s.name == name and label in s.labels}
