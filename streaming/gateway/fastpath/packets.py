"""Hooks into python-socketio's packet handling that admission and hostile input need (no public seam does it):
a CONNECT packet is offered to a refusal check first, a packet python-socketio cannot decode closes its
connection instead of escaping as a traceback, and events named like the server's lifecycle handlers are
dispatched as unknown events.

These are not optional like the delivery hooks (``install``): without them authentication and connection
limits would not apply, so a python-socketio without the internals they wrap stops the start-up.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from socketio import packet as socketio_packet

from streaming.gateway.fastpath.transport import close_transport

__all__ = ["intercept_packets"]

CONNECT_PACKET = str(socketio_packet.CONNECT)
NAMESPACE = "/"
# Errors python-socketio's decoding lets escape (invalid JSON, unknown packet types, unexpected attachments).
DECODING_ERRORS = (ValueError, TypeError, KeyError, IndexError, RecursionError)
_INTERNALS = ("_handle_eio_message", "_send_packet", "_handle_event")

# refuse(CONNECT packet text, WSGI environ) -> (code, message) of a refusal, or None to accept
Refusal = Callable[[str, dict[str, Any]], "tuple[str, str] | None"]


def intercept_packets(socketio: Any, *, refuse: Refusal, malformed: Callable[[Exception], None],
                      reserved: Collection[str]) -> None:
    """Install the three hooks on Flask-SocketIO's ``socketio``. ``malformed`` is told of each undecodable
    packet before its connection is closed; events named in ``reserved`` arrive as ``reserved:<name>``."""
    server = socketio.server
    missing = [name for name in _INTERNALS if not callable(getattr(server, name, None))]
    if missing:
        raise RuntimeError(f"python-socketio has no {', '.join(missing)}: admission and input checks cannot be "
                           "installed; install the python-socketio release of requirements.txt")
    handle = server._handle_eio_message  # the one Engine.IO message handler python-socketio registers

    def guarded(eio_sid: str, data: Any) -> Any:
        if isinstance(data, str) and data[:1] == CONNECT_PACKET:
            refusal = refuse(data, server.environ.get(eio_sid, {}))
            if refusal is not None:
                code, message = refusal
                server._send_packet(eio_sid, server.packet_class(
                    socketio_packet.CONNECT_ERROR, data={"message": message, "data": {"code": code}},
                    namespace=NAMESPACE))
                return None
        try:
            return handle(eio_sid, data)
        except DECODING_ERRORS as exc:
            malformed(exc)
            close_transport(socketio, eio_sid)
            return None

    server.eio.on("message", guarded)

    handle_event = server._handle_event  # python-socketio's dispatcher of decoded EVENT packets

    def ordinary_events_only(eio_sid: str, namespace: str | None, ack_id: Any, data: list[Any]) -> Any:
        """Events named like the server's own lifecycle handlers ("connect", "disconnect") or like the
        catch-all ("*", which Flask-SocketIO would run with the first argument as the sid) never reach them."""
        if data and isinstance(data[0], str) and data[0] in reserved:
            data = [f"reserved:{data[0]}"]
        return handle_event(eio_sid, namespace, ack_id, data)

    server._handle_event = ordinary_events_only
