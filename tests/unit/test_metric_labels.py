"""metrics.labels: every declared label value is exported as 0 by a fresh ServiceMetrics, and every value the
code counts with is declared (where the code names it in a literal, its source is read)."""
from __future__ import annotations

import re
from enum import StrEnum
from itertools import product
from pathlib import Path

from prometheus_client import Counter, generate_latest

from metrics.collectors import ServiceMetrics
from metrics.labels import ControlMethod, ReconnectReason, RejectedCode, StreamType, TaskName, UpstreamEvent
from streaming.core.auth import AuthError
from streaming.core.errors import InvalidRequestError, InvalidSymbolError, TooManySymbolsError, UnknownSymbolError
from streaming.exchanges.binance.protocol import stream_type
from streaming.gateway.admission import SHUTTING_DOWN, TOO_MANY_CONNECTIONS
from streaming.upstream.control import ControlChannel
from tests.metrics_samples import samples_of

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("streaming/**/*.py"), *ROOT.glob("cache/*.py"), ROOT / "app.py"])


def sample_name(counter: Counter) -> str:
    return counter.describe()[0].name + "_total"


def bounded(metrics: ServiceMetrics) -> list[tuple[str, tuple[type[StrEnum], ...]]]:
    return [(sample_name(counter), sets) for counter, sets in metrics.bounded_labels]


def source_matches(pattern: str, paths: list[Path] = SOURCES) -> set[str]:
    found = {match for path in paths for match in re.findall(pattern, path.read_text())}
    assert found, f"the pattern {pattern!r} no longer finds anything: the test must follow the code"
    return found


def test_a_fresh_registry_exports_every_declared_combination_as_zero_and_nothing_else() -> None:
    metrics = ServiceMetrics()
    found = samples_of(generate_latest(metrics.registry).decode())
    assert bounded(metrics)
    for name, sets in bounded(metrics):
        exported = {tuple(s.labels.values()): s.value for s in found if s.name == name}
        assert set(exported) == set(product(*sets)), name
        assert set(exported.values()) == {0.0}, name


def test_every_labelled_counter_has_declared_sets_or_is_open_ended() -> None:
    """A new labelled counter gets a row in ServiceMetrics.bounded_labels."""
    metrics = ServiceMetrics()
    labelled = {counter: counter._labelnames for counter in vars(metrics).values()
                if isinstance(counter, Counter) and counter._labelnames}
    declared = dict(metrics.bounded_labels)
    assert {sample_name(c) for c in labelled} == {sample_name(c) for c in declared}
    for counter, sets in declared.items():
        assert len(sets) == len(labelled[counter]), f"{sample_name(counter)}: one set per label"


def test_every_reconnect_reason_of_the_upstream_connection_is_declared() -> None:
    """The reason is the first word of what a session returns, or of what maintain() forces (reconnect(...))."""
    upstream = [ROOT / "streaming" / "upstream" / "connection.py"]
    reasons = source_matches(r'(?:return|reconnect\()\s*f?"([a-z_]+):', upstream)
    reasons -= {"stopped"}  # returned only when the connection is stopped: no reconnect follows
    assert reasons <= set(ReconnectReason), reasons - set(ReconnectReason)
    assert reasons == set(ReconnectReason), f"declared but never returned: {set(ReconnectReason) - reasons}"


def test_every_upstream_event_is_declared() -> None:
    events = source_matches(r'on_event\(\w+, "(\w+)"')
    routed_elsewhere = {"reconnect", "request_sent", "stale"}  # counters of their own (see StreamingService.on_event)
    assert events - routed_elsewhere <= set(UpstreamEvent), events - routed_elsewhere - set(UpstreamEvent)


def test_every_control_method_is_declared() -> None:
    channel = ControlChannel(lambda: 0.0, messages_per_second=1000)
    channel.want("btcusdt@ticker")
    subscribe = channel.next_request()
    channel.unwant("btcusdt@ticker")
    channel.connected(["ethusdt@ticker"])
    unsubscribe = channel.next_request()
    assert subscribe is not None and unsubscribe is not None
    assert {subscribe.method, unsubscribe.method} == set(ControlMethod)


def test_every_rejection_code_is_declared() -> None:
    literal = source_matches(r'count_rejection\("(\w+)"\)')
    classes = {cls.code for cls in (InvalidRequestError, InvalidSymbolError, UnknownSymbolError,
                                    TooManySymbolsError, AuthError)}
    by_name = source_matches(r'count_rejection\((\w+)\.code\)')
    assert by_name <= {"exc", "UnknownSymbolError", "TooManySymbolsError", "AuthError"}, by_name
    codes = literal | classes | {SHUTTING_DOWN, TOO_MANY_CONNECTIONS}
    assert codes <= set(RejectedCode), codes - set(RejectedCode)


def test_every_stream_type_is_declared() -> None:
    streams = ("btcusdt@ticker", "!ticker@arr", "btcusdt@aggTrade", "btcusdt@bookTicker", "x@depth")
    assert {stream_type(s) for s in streams} == set(StreamType)


def test_every_task_name_counted_in_a_literal_is_declared() -> None:
    names = source_matches(r'task_errors\.labels\("([^"]+)"\)')
    assert names <= set(TaskName), names - set(TaskName)
