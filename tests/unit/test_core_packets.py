"""streaming.core.packets: an update's packet, built from its stored text, is byte for byte what python-socketio
encodes for the positioned payload (and for a recovered one)."""
from __future__ import annotations

import json

from socketio import packet as sio_packet

from streaming.core.packets import packet, recovered

WIRE = {"symbol": "BTCUSDT", "price": 86000.5, "timestamp": "2026-12-04T13:20:06.065Z", "eventTime": 1796390406065,
        "note": "€ \"quoted\""}


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def library(event: str, payload: dict) -> str:
    return sio_packet.Packet(sio_packet.EVENT, namespace="/", data=[event, payload]).encode()


def test_a_packet_is_byte_for_byte_what_python_socketio_encodes_for_the_positioned_payload() -> None:
    built = packet("price_update", compact(WIRE), 7, "9f3a01bc")
    assert built == library("price_update", {**WIRE, "offset": 7, "epoch": "9f3a01bc"})


def test_a_recovered_packet_ends_with_the_flag_as_one_process_sends_it() -> None:
    marked = recovered(packet("trade", compact({"symbol": "X", "id": 3}), 2, "e"))
    assert marked == library("trade", {"symbol": "X", "id": 3, "offset": 2, "epoch": "e", "recovered": True})
    assert marked.endswith(',"offset":2,"epoch":"e","recovered":true}]')
