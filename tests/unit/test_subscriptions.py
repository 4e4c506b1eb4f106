"""streaming.core.subscriptions: the registry reports first and last subscribers."""
from __future__ import annotations

from streaming.core.subscriptions import SubscriptionRegistry


def test_first_and_last_subscriber_transitions() -> None:
    registry = SubscriptionRegistry()
    assert registry.add("a", ["BTCUSDT", "ETHUSDT"]) == (["BTCUSDT", "ETHUSDT"], ["BTCUSDT", "ETHUSDT"])
    assert registry.add("b", ["BTCUSDT"]) == (["BTCUSDT"], [])
    assert registry.add("b", ["BTCUSDT"]) == ([], [])
    assert registry.counts() == {"BTCUSDT": 2, "ETHUSDT": 1}
    assert registry.total_subscriptions() == 3
    assert registry.remove("a", ["BTCUSDT", "SOLUSDT"]) == (["BTCUSDT"], [])
    assert registry.remove("b", ["BTCUSDT"]) == (["BTCUSDT"], ["BTCUSDT"])
    assert registry.keys() == frozenset({"ETHUSDT"})


def test_drop_forgets_the_client_and_reports_orphans() -> None:
    registry = SubscriptionRegistry()
    registry.add("a", ["BTCUSDT", "ETHUSDT"])
    registry.add("b", ["ETHUSDT"])
    assert registry.drop("a") == ["BTCUSDT"]
    assert registry.client_count() == 1
    assert registry.of("a") == frozenset()
    assert registry.drop("a") == []
    assert registry.drop("b") == ["ETHUSDT"]
    assert registry.total_subscriptions() == 0 and registry.counts() == {}


def test_unknown_client_removal_is_harmless() -> None:
    assert SubscriptionRegistry().remove("nobody", ["BTCUSDT"]) == ([], [])
