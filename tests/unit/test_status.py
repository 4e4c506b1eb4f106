"""streaming.hub.status: per-symbol stream states and their transitions."""
from __future__ import annotations

from streaming.hub.status import LIVE, RECONNECTING, STALE, StreamStates


def test_first_tick_is_silent_and_recovery_is_reported() -> None:
    states = StreamStates()
    assert states.tick("BTCUSDT", 1.0, 1.0) is None
    assert states.get("BTCUSDT").state == LIVE
    changed = states.down(["BTCUSDT", "ETHUSDT"], RECONNECTING, 2.0)
    assert [(s.symbol, s.state, s.since) for s in changed] == [("BTCUSDT", RECONNECTING, 2.0),
                                                                ("ETHUSDT", RECONNECTING, 2.0)]
    assert states.down(["BTCUSDT"], RECONNECTING, 3.0) == [], "no repeat of the same state"
    assert states.down_symbols() == {"BTCUSDT": RECONNECTING, "ETHUSDT": RECONNECTING}
    back = states.tick("BTCUSDT", 4.0, 4.0)
    assert back is not None and back.state == LIVE and back.since == 4.0
    assert states.tick("BTCUSDT", 5.0, 5.0) is None
    assert states.down_symbols() == {"ETHUSDT": RECONNECTING}


def test_quiet_symbols_are_found_and_stale_is_a_state() -> None:
    states = StreamStates()
    states.tick("BTCUSDT", 0.0, 10.0)
    states.tick("ETHUSDT", 0.0, 25.0)
    assert states.quiet(["BTCUSDT", "ETHUSDT", "NEWUSDT"], received_before=20.0) == ["BTCUSDT"]
    states.down(["BTCUSDT"], STALE, 30.0)
    assert states.quiet(["BTCUSDT"], received_before=40.0) == [], "already reported"
    states.forget("BTCUSDT")
    assert states.get("BTCUSDT") is None and states.down_symbols() == {}
