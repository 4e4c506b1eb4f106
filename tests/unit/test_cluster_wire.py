"""The cluster's message format and the gateway's sequencing decisions (pure)."""
from __future__ import annotations

import json

import pytest

from streaming.cluster.sequencer import Step, Verdict, decide
from streaming.cluster.wire import MalformedMessage, Message, parse_message
from streaming.core.packets import packet


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_a_message_splits_into_offset_epoch_time_and_the_packet_untouched() -> None:
    text = packet("book_ticker", compact({"symbol": "ETHUSDT", "note": "a b  c"}), 12, "abcd0123")
    assert parse_message(f"12 abcd0123 1796390406065 {text}".encode()) == Message(12, "abcd0123", 1796390406065,
                                                                                   text)


@pytest.mark.parametrize("raw", ["", "12 abcd 17", "x abcd 17 2[\"e\",{}]", "1 e 2 {\"not\":\"a packet\"}",
                                 "1 e t 2[\"e\",{}]"])
def test_anything_else_is_malformed(raw: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(raw)


@pytest.mark.parametrize(("held", "message", "step"), [
    ((None, 0), ("e1", 1), Step(Verdict.NEW_EPOCH)),  # nothing known yet
    (("e1", 4), ("e2", 5), Step(Verdict.NEW_EPOCH)),  # the history started again
    (("e1", 4), ("e1", 5), Step(Verdict.FORWARD)),
    (("e1", 4), ("e1", 4), Step(Verdict.REPEAT)),
    (("e1", 4), ("e1", 2), Step(Verdict.REPEAT)),
    (("e1", 4), ("e1", 9), Step(Verdict.GAP, 5, 8)),
    (("e1", 0), ("e1", 1), Step(Verdict.FORWARD)),
])
def test_each_message_is_forwarded_dropped_or_preceded_by_its_gap(held: tuple, message: tuple, step: Step) -> None:
    assert decide(held[0], held[1], message[0], message[1]) == step
