"""How many clients the service admits under an open-files limit (pure planning; the raise itself is e2e)."""
from __future__ import annotations

import pytest

from streaming.runtime.descriptors import RESERVED_DESCRIPTORS, DescriptorError, plan_descriptors

HEADROOM = 256


def plan(limit: int, max_connections: int = 20000, per_ip: int = 2000, tcp_per_ip: int = 0, before: int = 0):
    return plan_descriptors(limit, before or limit, max_connections, per_ip, tcp_per_ip, HEADROOM)


def test_max_connections_is_lowered_to_what_the_limit_holds() -> None:
    result = plan(1200, before=1024)
    assert result.max_connections == 1200 - RESERVED_DESCRIPTORS - HEADROOM == 880
    assert result.lowered
    assert result.message.startswith("open-files limit 1200 (raised from 1024): MAX_CONNECTIONS lowered from "
                                     "20000 to 880 to fit")


def test_a_generous_limit_changes_nothing() -> None:
    result = plan(1_048_576)
    assert (result.max_connections, result.lowered) == (20000, False)
    assert result.tcp_per_address == 2000 + HEADROOM  # automatic: the Socket.IO cap plus HTTP requests
    assert "room for MAX_CONNECTIONS=20000" in result.message


def test_one_address_gets_at_most_half_of_the_descriptors_unless_told_otherwise() -> None:
    assert plan(1200).tcp_per_address == (1200 - RESERVED_DESCRIPTORS) // 2 == 568
    assert plan(1200, tcp_per_ip=1000).tcp_per_address == 1000  # explicit (e.g. behind a proxy): kept...
    assert plan(1200, tcp_per_ip=5000).tcp_per_address == 1200 - RESERVED_DESCRIPTORS  # ...up to the limit


def test_a_limit_without_room_for_clients_is_refused_with_what_to_do() -> None:
    with pytest.raises(DescriptorError, match="leaves room for 0 clients; raise it to at least 336"):
        plan(200)
    assert plan(336).max_connections == 16
