"""permessage-deflate on client WebSockets: off by default (WS_COMPRESSION), on when asked, in both modes."""
from __future__ import annotations

import websocket

from tests.e2e.process import ServiceProcess

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


def negotiated_extensions(service: ServiceProcess) -> str | None:
    """Open an Engine.IO WebSocket offering permessage-deflate, as socket.io-client does; return what the
    server accepted."""
    url = service.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, header=[OFFER], timeout=5)
    try:
        accepted = (ws.getheaders() or {}).get("sec-websocket-extensions")
        if accepted is None:  # websocket-client cannot read compressed frames, so only read plain ones
            assert ws.recv().startswith("0{")  # the Engine.IO open packet: the connection works
        return accepted
    finally:
        ws.close()


def test_compression_is_off_by_default(service: ServiceProcess) -> None:
    assert negotiated_extensions(service) is None


def test_compression_when_enabled(start_service) -> None:
    service = start_service(WS_COMPRESSION="true")
    accepted = negotiated_extensions(service)
    assert accepted is not None and "permessage-deflate" in accepted
