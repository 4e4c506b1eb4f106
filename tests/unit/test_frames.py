"""streaming.core.frames: server frames as RFC 6455 defines them, read back by an independent parser (wsproto)."""
from __future__ import annotations

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode

from streaming.core.frames import BINARY, TEXT, frame


def parse(data: bytes) -> list:
    """Frames as a client reads them (a client expects unmasked frames from the server)."""
    protocol = FrameProtocol(client=True, extensions=[])
    protocol.receive_bytes(data)
    return list(protocol.received_frames())


def test_rfc6455_example_single_frame_unmasked_text() -> None:
    # RFC 6455 section 5.7: "A single-frame unmasked text message" containing "Hello"
    assert frame(b"Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_length_encoding_reads_back_whole(length: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    frames = parse(frame(payload, BINARY))
    assert len(frames) == 1
    assert frames[0].opcode is Opcode.BINARY and frames[0].frame_finished and frames[0].message_finished
    assert bytes(frames[0].payload) == payload


def test_text_frames_carry_utf8() -> None:
    text = '42["price_update",{"symbol":"BTCUSDT","price":"97000.1","note":"€"}]'
    frames = parse(frame(text.encode("utf-8"), TEXT))
    assert frames[0].opcode is Opcode.TEXT and frames[0].payload == text


def test_header_sizes_switch_at_the_documented_lengths() -> None:
    assert len(frame(b"x" * 125)) - 125 == 2
    assert len(frame(b"x" * 126)) - 126 == 4
    assert len(frame(b"x" * 65535)) - 65535 == 4
    assert len(frame(b"x" * 65536)) - 65536 == 10


def test_control_opcodes_are_refused() -> None:
    with pytest.raises(ValueError, match="data frames only"):
        frame(b"", 0x8)
