"""Room broadcasts that encode and frame a message once, then write the same bytes to every recipient.

python-socketio encodes a broadcast once but hands it to each client's python-engineio queue, whose writer
thread frames and sends it: per recipient a queue put, a green-thread switch and a framing. RoomBroadcaster
builds the Socket.IO packet with the server's own packet class (the bytes are exactly those python-socketio
would send), frames it once, and writes the frame through each recipient's Outlet without blocking; a client
with anything queued, a polling transport, or a full socket buffer gets the packet through python-engineio's
queue as before, so per client the order of everything it is sent is kept. Slow clients still build up a
queue, which the BacklogGuard conflates and cuts off as before.

Coalesced emits (trades: one message per aggregated trade, up to 100 a second per symbol) are gathered per room
for up to ``window`` seconds and then written to each recipient in one socket write of several WebSocket frames:
every message stays its own Socket.IO event, in order, but a recipient costs one write per window instead of
one per message.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from streaming.core.frames import frame
from streaming.gateway.fastpath.detached import DetachedWebSocket
from streaming.gateway.fastpath.gevent_ws import GeventWebSocket
from streaming.gateway.fastpath.outlets import Outlet, attach
from streaming.gateway.fastpath.pings import spawn_later_for
from streaming.gateway.fastpath.watchers import bare_spawn_for, read_watcher_for
from streaming.gateway.fastpath.writers import OnDemandWriter
from streaming.runtime.wsgi import TAKEOVER

__all__ = ["RoomBroadcaster"]

log = logging.getLogger(__name__)

NAMESPACE = "/"


# The async modes whose direct WebSocket clients are served from the event loop (streaming.gateway.fastpath.detached):
# 13.6 KB (eventlet) and 10.7 KB (gevent) per idle client instead of 39-41 (docs/PERFORMANCE.md, "Memory per idle
# client"). The off switch: () serves every WebSocket from its request's green thread.
DETACHED_MODES: tuple[str, ...] = ("eventlet", "gevent")

_WRITER = "Socket._websocket_handler.<locals>.writer"  # python-engineio's writer task, a closure over (self, ws)


def writer_context(target: Callable[..., Any]) -> tuple[Any, Any] | None:
    """The (engineio Socket, WebSocket) of python-engineio's WebSocket writer task; None for any other task."""
    if getattr(target, "__qualname__", None) != _WRITER or getattr(target, "__module__", None) != "engineio.socket":
        return None
    cells = dict(zip(target.__code__.co_freevars, (cell.cell_contents for cell in target.__closure__ or ())))
    if "self" not in cells or "ws" not in cells:
        return None
    return cells["self"], cells["ws"]


class RoomBroadcaster:
    def __init__(self, server: Any, spawn: Callable[[Callable[[], None]], object], direct: bool = True,
                 library: bool = False, window: float = 0.0) -> None:
        """``server``: the python-socketio Server (Flask-SocketIO's ``socketio.server``). With ``direct`` False
        every packet goes through python-engineio's queues (compressed WebSockets frame messages themselves);
        with ``library`` True every message is python-socketio's own ``emit`` (the fast path is off).
        ``window``: how long coalesced emits of a room wait to go out together (0: at once)."""
        self._server = server
        self._window = window if direct and not library else 0.0
        self._batches: dict[str, list[tuple[Any, bytes]]] = {}  # room -> (packet, frame) waiting for the flush
        self._batch_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # held while a flush writes: flush(room) waits for one under way
        self._batch_due = threading.Event()
        self._flusher_started = False
        self.on_flushed: Callable[[int, int], None] = lambda direct, queued: None  # deliveries of a flush
        # told the TCP socket of each WebSocket the server has just accepted (its HTTP handshake is over)
        self.on_websocket: Callable[[Any], None] = lambda sock: None
        self._library = library
        self._eio = server.eio
        self._spawn = spawn
        self._outlets: dict[str, Outlet] = {}
        self.direct = direct
        if direct:
            self._hook_websockets()

    def _hook_websockets(self) -> None:
        """Give each WebSocket python-engineio accepts an Outlet for the life of its handler and, when the client
        connected with the WebSocket transport directly, an on-demand writer instead of a writer green thread.

        python-engineio builds a WebSocket with ``server._async['websocket'](handler, server)`` and starts its
        writer with ``server._async['thread'](target=writer)`` (its async driver's classes); this server's copy
        of that table gets factories that wrap them."""
        drivers = dict(self._eio._async)
        make_websocket = drivers["websocket"]
        make_thread = drivers["thread"]
        if make_websocket is None:
            return
        if self._eio.async_mode == "gevent":  # instead of simple-websocket: no extra descriptor and reader
            make_websocket = GeventWebSocket
        outlets = self._outlets
        spawn = self._spawn
        fresh: set[str] = set()  # sids whose WebSocket handler runs for a client that did not poll first
        mode = self._eio.async_mode
        watch = read_watcher_for(mode) if mode in DETACHED_MODES else None
        bare_spawn, spawn_later = bare_spawn_for(mode), spawn_later_for(mode)

        def websocket(handler: Callable[[Any], Any], server: Any) -> Any:
            sock = handler.__self__
            if sock.connected or watch is None or bare_spawn is None or spawn_later is None:
                return threaded(handler, server)

            def detached(environ: dict, start_response: Callable[..., Any]) -> Any:
                """A client that connected with the WebSocket transport directly, on a server that lets the
                connection be taken over: served from the event loop, without a green thread of its own."""
                take_over = environ.pop(TAKEOVER, None)
                if take_over is None:
                    return threaded(handler, server)(environ, start_response)
                ws = DetachedWebSocket(sock, outlets, bare_spawn, spawn_later, watch,  # type: ignore[arg-type]
                                       self.on_websocket)
                return ws.serve(environ, take_over)

            return detached

        def threaded(handler: Callable[[Any], Any], server: Any) -> Any:
            """python-engineio's WebSocket, served by its request's green thread, with an Outlet."""
            sock = handler.__self__
            eio_sid = sock.sid

            def with_outlet(ws: Any) -> Any:
                self.on_websocket(getattr(ws, "socket", None))
                outlet = attach(ws, spawn)
                if outlet is not None:
                    outlets[eio_sid] = outlet
                    if not sock.connected:
                        fresh.add(eio_sid)
                try:
                    return handler(ws)
                finally:
                    fresh.discard(eio_sid)
                    if outlet is not None and outlets.get(eio_sid) is outlet:
                        del outlets[eio_sid]
                        outlet.closed = True

            return make_websocket(with_outlet, server)

        def thread(target: Callable[..., Any], args: Any = None, kwargs: Any = None) -> Any:
            context = writer_context(target)
            if context is not None and context[0].sid in fresh:
                fresh.discard(context[0].sid)
                return OnDemandWriter(context[0], context[1], spawn)
            return make_thread(target=target, args=args, kwargs=kwargs)

        drivers["websocket"] = websocket
        drivers["thread"] = thread
        self._eio._async = drivers

    @property
    def outlets(self) -> int:
        return len(self._outlets)

    def emit(self, event: str, data: Any, room: str, coalesce: bool = False) -> tuple[int, int]:
        """Send ``event`` with ``data`` to every client in ``room``; returns how many clients were written to
        directly and how many got it through their queue. With ``coalesce`` (and a window) the message waits
        for the room's next flush, whose deliveries are reported to ``on_flushed`` instead: (0, 0) here."""
        if self._library:
            return 0, self._library_emit(event, data, room)
        encoded = self._server.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, data]).encode()
        if isinstance(encoded, list):  # binary attachments: python-socketio's own path
            return 0, self._library_emit(event, data, room)
        return self._emit_encoded([encoded], room, coalesce)

    def emit_packets(self, encoded: Sequence[str], room: str, coalesce: bool = False) -> tuple[int, int]:
        """Like ``emit``, for Socket.IO EVENT packets already encoded as python-socketio encodes them
        (``2["event",{...}]``, the default namespace), in order: a gateway sends what the leader published as it
        is, and a client's recovered updates go out together, in one socket write where it can take them."""
        if self._library:
            queued = 0
            for text in encoded:
                event, data = json.loads(text[1:])
                queued += self._library_emit(event, data, room)
            return 0, queued
        return self._emit_encoded(encoded, room, coalesce)

    def _emit_encoded(self, encoded: Sequence[str], room: str, coalesce: bool) -> tuple[int, int]:
        packets = [eio_packet.Packet(eio_packet.MESSAGE, text) for text in encoded]
        wires = ([frame(eio_pkt.encode().encode("utf-8")) for eio_pkt in packets] if self._outlets
                 else [b""] * len(packets))
        if coalesce and self._window > 0:
            with self._batch_lock:
                self._batches.setdefault(room, []).extend(zip(packets, wires))
            self._start_flusher()
            self._batch_due.set()
            return 0, 0
        return self._send(room, packets, b"".join(wires))

    def _send(self, room: str, packets: list[Any], wire: bytes) -> tuple[int, int]:
        """Write ``wire`` (the frames of ``packets``) to each recipient that can take it now, else queue the
        packets for it in order."""
        sockets = self._eio.sockets
        outlets = self._outlets
        direct = queued = 0
        for _sid, eio_sid in self._server.manager.get_participants(NAMESPACE, room):
            outlet = outlets.get(eio_sid)
            if outlet is not None:
                sock = sockets.get(eio_sid)
                if (sock is not None and sock.upgraded and not sock.upgrading and not sock.closed
                        and not sock.queue.qsize() and outlet.offer(wire)):
                    direct += len(packets)
                    continue
            for eio_pkt in packets:
                self._eio.send_packet(eio_sid, eio_pkt)
            queued += len(packets)
        return direct, queued

    def _start_flusher(self) -> None:
        if not self._flusher_started:
            self._flusher_started = True
            self._spawn(self._flush_loop)

    def _flush_loop(self) -> None:
        while True:
            self._batch_due.wait()
            time.sleep(self._window)  # green: what arrives meanwhile goes out with it
            self._batch_due.clear()
            try:
                self.flush()
            except Exception:  # a bug here must not end the flusher: later batches would never go out
                log.exception("flushing coalesced room messages failed; continuing")

    def flush(self, room: str | None = None) -> None:
        """Write every room's waiting messages (or only ``room``'s), each room's in the order they were emitted.

        When it returns, no message emitted before the call is still waiting for those rooms: a client that
        joins one afterwards gets none of them."""
        with self._flush_lock:
            with self._batch_lock:
                if room is None:
                    batches, self._batches = self._batches, {}
                else:
                    batch = self._batches.pop(room, None)
                    batches = {room: batch} if batch else {}
            self._write(batches)

    def _write(self, batches: dict[str, list[tuple[Any, bytes]]]) -> None:
        direct = queued = 0
        for room, batch in batches.items():
            sent = self._send(room, [eio_pkt for eio_pkt, _ in batch], b"".join(wire for _, wire in batch))
            direct += sent[0]
            queued += sent[1]
        if direct or queued:
            self.on_flushed(direct, queued)

    def _library_emit(self, event: str, data: Any, room: str) -> int:
        """python-socketio's own emit to the room; returns how many clients it was queued for."""
        recipients = sum(1 for _ in self._server.manager.get_participants(NAMESPACE, room))
        self._server.emit(event, data, to=room, namespace=NAMESPACE)
        return recipients
