"""UpstreamConnection: one exchange connection of one route and its reader task.

The reader connects on its route (Binance's /market or /public, Bybit's /v5/public/linear), answers server pings
(echoing the payload), hands every frame to its exchange's ``WireSession`` (a new one per connection), passes each
frame's updates to the observer, settles control replies, reconnects after drops (``pacing.ReconnectPolicy``), and
closes a connection that carries streams but has been silent too long (watchdog). It pings with WebSocket ping
frames, or with the exchange's text ping where it has one (Bybit), and reconnects when the pong is late.
An optional tap sees every text frame as received, before it is parsed (``FrameRecorder.offer``; it must not block).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import websocket

from streaming.core.channels import Channel
from streaming.core.pacing import ReconnectPolicy
from streaming.exchanges.adapter import Exchange, WireSession
from streaming.exchanges.messages import ErrorReply, Pong, Reply, StreamBatch, Unrecognised
from streaming.runtime.tasks import TaskRunner
from streaming.upstream.control import ControlChannel

__all__ = ["FrameTap", "UpstreamConnection", "UpstreamStatus", "Timing", "UpstreamObserver"]

log = logging.getLogger(__name__)

# How long a blocking receive waits before the reader checks its stop event and watchdog.
RECEIVE_POLL = 0.5
CONNECT_TIMEOUT = 10.0
# Unanswered control requests older than this mean the connection is broken.
REPLY_TIMEOUT = 10.0
# How long a clean close waits for the server's close frame.
CLOSE_TIMEOUT = 1.0


# Sees every text frame as received; must never block.
FrameTap = Callable[[str, str, bytes, float], None]  # (exchange, route, text frame, receive time in epoch ms)


class UpstreamObserver(Protocol):
    """What the connection reports to (the service: fan-out, stream states, metrics and logs).

    An event's ``detail`` starts with a bounded category, up to the first ':' (e.g. ``code=2: id=7 ...``)."""

    def on_updates(self, batch: StreamBatch, received_at: float) -> None:
        """The updates of one frame; ``received_at`` is ``time.perf_counter()`` when the frame was read."""

    def on_event(self, connection: UpstreamConnection, event: str, detail: str = "") -> None: ...

    def on_pool_error(self) -> None: ...


@dataclass(frozen=True)
class Timing:
    """Intervals and limits of one connection (settings RECONNECT_DELAY, STALE_TIMEOUT, PING_INTERVAL...)."""

    reconnect_delay: float = 5.0
    stale_timeout: float = 30.0
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    max_reconnect_delay: float = 10.0


@dataclass(frozen=True)
class UpstreamStatus:
    index: int
    state: str
    url: str
    streams: int
    connected_since: float | None
    last_message_at: float | None
    messages: int
    reconnects: int
    exchange: str = "binance"


class UpstreamConnection:
    """One connection to an exchange's route. Its control channel is guarded by ``lock``."""

    def __init__(
        self,
        exchange: Exchange,
        index: int,
        base_url: str,
        channel: ControlChannel,
        observer: UpstreamObserver,
        tasks: TaskRunner,
        timing: Timing,
        connection_slot: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
        route: str | None = None,
        tap: FrameTap | None = None,
    ) -> None:
        self.exchange = exchange
        self.index = index
        self.base_url = base_url
        self.route = exchange.routes[0] if route is None else route
        self.channel = channel
        self.lock = threading.Lock()
        self._observer = observer
        self._tasks = tasks
        self._timing = timing
        self._connection_slot = connection_slot  # 0.0: go ahead; else seconds to wait (connection budget)
        self._clock = clock
        self._tap = tap
        self._forced_reason: str | None = None  # why maintain() cut the current connection
        self._ping_payload: bytes | None = None  # our ping awaiting its pong
        self._ping_sent_at = 0.0
        self._pings = 0
        self._wire: WireSession = exchange.session()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._send_lock = threading.Lock()
        self.state = "idle"
        self.url = exchange.stream_url(base_url, self.route, ())
        self.connected_since: float | None = None
        self.last_message_at: float | None = None
        self.messages = 0
        self.reconnects = 0

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._done.clear()
        self._tasks.start(self._run)

    def request_stop(self) -> None:
        """Ask the reader to finish; it closes the socket with a close frame within the receive poll."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the reader to finish (it closes the socket with a close frame) and wait; returns whether it did.

        A reader that does not finish within the receive poll and the close handshake is cut off."""
        self.request_stop()
        if self._done.wait(RECEIVE_POLL + CLOSE_TIMEOUT + 0.5):
            return True
        self._close_socket()
        return self._done.wait(timeout)

    def age(self) -> float:
        """Seconds since the current connection opened (0 when not connected)."""
        since = self.connected_since
        return 0.0 if since is None or self.state != "live" else self._clock() - since

    def reconnect(self, reason: str) -> None:
        """Drop the current socket; the reader reconnects (unanswered requests, a dead peer)."""
        log.warning("upstream %d: closing connection (%s)", self.index, reason)
        self._forced_reason = reason
        self.state = "closing"  # no more requests on it; the reader reconnects
        self._close_socket()

    def channels(self) -> list[Channel]:
        """The channels this connection is meant to carry."""
        with self.lock:
            streams = list(self.channel.wanted)
        return sorted(filter(None, map(self.exchange.channel_of_stream, streams)))

    def status(self) -> UpstreamStatus:
        with self.lock:
            streams = len(self.channel.active)
        return UpstreamStatus(
            self.index, self.state, self.url, streams, self.connected_since, self.last_message_at,
            self.messages, self.reconnects, self.exchange.name,
        )

    # -- sending ----------------------------------------------------------------------------------------------
    def maintain(self) -> float:
        """Send the control requests and the ping that are due, and check the pong and the replies.

        Returns seconds until something may be due again. Called by the pool task only."""
        ws = self._ws
        if ws is None or self.state != "live":
            return 0.2
        now = self._clock()
        if self._ping_payload is not None and now - self._ping_sent_at > self._timing.pong_timeout:
            self.reconnect(f"dead_peer: no pong within {self._timing.pong_timeout:g}s")
            return 0.2
        while True:
            with self.lock:
                overdue = self.channel.overdue(REPLY_TIMEOUT)
                request = None if overdue else self.channel.next_request()
                ping_due = (
                    request is None
                    and self._ping_payload is None
                    and now - self._ping_sent_at >= self._timing.ping_interval
                    and self.channel.take_token()  # a ping counts toward the messages per second too
                )
                delay = self.channel.pace_delay()
            if overdue:
                self.reconnect(f"no_reply: request id {overdue[0].id} unanswered for {REPLY_TIMEOUT:g}s")
                return 0.2
            if ping_due:
                self._ping(ws, now)
                return 0.2
            if request is None:
                return max(delay, 0.05)
            frame = self.exchange.control_request(request.method, request.id, request.streams)
            if not self._send(ws, frame, websocket.ABNF.OPCODE_TEXT, request.method):
                return 0.2
            log.info(
                "upstream %d: %s id=%d streams=%d", self.index, request.method, request.id, len(request.streams)
            )
            self._observer.on_event(self, "request_sent", request.method)

    def _ping(self, ws: websocket.WebSocket, now: float) -> None:
        """Send a ping: a WebSocket ping frame echoed by a pong frame, or the exchange's text ping, answered by
        a Pong message. It is remembered before sending: on plain threads the reader may see the pong before
        send returns."""
        self._pings += 1
        ping_frame = self.exchange.ping_frame
        payload = str(int(time.time() * 1000)).encode() if ping_frame is None else b"ping %d" % self._pings
        self._ping_payload, self._ping_sent_at = payload, now
        sent = (self._send(ws, payload, websocket.ABNF.OPCODE_PING, "ping") if ping_frame is None
                else self._send(ws, ping_frame(self._pings), websocket.ABNF.OPCODE_TEXT, "ping"))
        if not sent:
            self._ping_payload = None

    def _send(self, ws: websocket.WebSocket, data: str | bytes, opcode: int, what: str) -> bool:
        try:
            with self._send_lock:
                ws.send(data, opcode)
        except (OSError, websocket.WebSocketException) as exc:
            log.warning("upstream %d: sending %s failed: %s", self.index, what, exc)
            self._close_socket()
            return False
        return True

    # -- the reader task --------------------------------------------------------------------------------------
    def _run(self) -> None:
        reconnects = ReconnectPolicy(self._timing.reconnect_delay, self._timing.max_reconnect_delay)
        try:
            while not self._stop.is_set():
                messages_before = self.messages
                reason = self._session()
                if self._stop.is_set():
                    break
                since = self.connected_since
                delay = reconnects.after(None if since is None else self._clock() - since,
                                         delivered=self.messages > messages_before)
                self.connected_since = None
                self.state = "reconnecting"
                self.reconnects += 1
                log.warning("upstream %d: %s; reconnecting in %.1fs", self.index, reason, delay)
                self._observer.on_event(self, "reconnect", reason.split(":")[0])
                self._stop.wait(delay)
        finally:
            self.state = "stopped"
            self._done.set()

    def _session(self) -> str:
        """One connection, from open to close; returns why it ended (first word is a bounded category)."""
        with self.lock:
            initial = sorted(self.channel.wanted - self.channel.rejected)[:self.exchange.url_stream_limit]
        url = self.exchange.stream_url(self.base_url, self.route, initial)
        self.state = "connecting"
        if not self._wait_for_connection_slot():
            return "stopped: while waiting for the connection budget"
        try:
            ws = websocket.create_connection(url, timeout=CONNECT_TIMEOUT, enable_multithread=True)
        except (OSError, websocket.WebSocketException) as exc:
            return f"connect_failed: {exc}"
        ws.settimeout(RECEIVE_POLL)
        self._wire = self.exchange.session()  # nothing merged survives a reconnection
        with self.lock:
            self.channel.connected(initial)
        self._ws = ws
        self._ping_payload, self._ping_sent_at = None, self._clock()
        self.url = url.split("?")[0]
        self.connected_since = self.last_message_at = self._clock()
        self.state = "live"
        log.info("upstream %d: connected to %s with %d streams", self.index, self.url, len(initial))
        self._observer.on_event(self, "connected")
        try:
            reason = self._read(ws)
            return self._forced_reason or reason
        finally:
            self._forced_reason = None
            self._ws = None
            with self.lock:
                self.channel.disconnected()
            try:
                ws.close(timeout=CLOSE_TIMEOUT)
            except (OSError, websocket.WebSocketException):
                pass
            ws.shutdown()  # close() skips this when the peer already ended the connection

    def _read(self, ws: websocket.WebSocket) -> str:
        while not self._stop.is_set():
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
                received_at = time.perf_counter()
            except websocket.WebSocketTimeoutException:
                pass
            except websocket.WebSocketConnectionClosedException:
                return "closed: connection closed"
            except (OSError, websocket.WebSocketException) as exc:
                return f"error: {exc}"
            else:
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code, reason = _close_details(frame.data)
                    return f"closed: server closed with {code} {reason}".rstrip()
                # websocket-client answers a server ping itself, with a pong echoing its payload
                if opcode == websocket.ABNF.OPCODE_PONG:
                    if frame.data == self._ping_payload:
                        self._ping_payload = None
                elif opcode != websocket.ABNF.OPCODE_PING:
                    try:
                        if self._tap is not None and opcode == websocket.ABNF.OPCODE_TEXT:
                            self._tap(self.exchange.name, self.route, frame.data, time.time() * 1000.0)
                        self._handle(frame.data, received_at)
                    except Exception:  # a bug in handling one frame must not end the connection's reader
                        log.exception("upstream %d: handling a frame failed; continuing", self.index)
                        self._observer.on_event(self, "handler_error", "handler_error: see the log")
            silence = self._silence()
            if silence is not None:
                self._observer.on_event(self, "stale")
                return f"stale: no data for {silence:.0f}s"
        return "stopped"

    def _wait_for_connection_slot(self) -> bool:
        """Wait while the pool's connection budget is spent; returns False if stopped meanwhile."""
        reported = False
        while not self._stop.is_set():
            wait = self._connection_slot()
            if wait <= 0:
                return True
            if not reported:
                log.warning("upstream %d: connection budget spent; next attempt in %.0fs", self.index, wait)
                self._observer.on_event(self, "connection_budget")
                reported = True
            self._stop.wait(min(wait, 1.0))
        return False

    def _silence(self) -> float | None:
        """Seconds without data, if the connection carries streams and that is longer than the stale timeout.

        Pings, acknowledgements and error frames do not count as data: only data frames reset the watchdog.
        """
        silent_for = self._clock() - (self.last_message_at or self._clock())
        if silent_for <= self._timing.stale_timeout:
            return None
        with self.lock:
            carrying = bool(self.channel.active)
        return silent_for if carrying else None

    def _handle(self, data: bytes | str, received_at: float) -> None:
        message = self._wire.decode(data)
        if isinstance(message, StreamBatch):
            self.last_message_at = self._clock()
            self.messages += 1
            self._observer.on_updates(message, received_at)
        elif isinstance(message, Reply):
            with self.lock:
                outcome = self.channel.on_reply(message.id)
            if outcome.request is None:
                self._observer.on_event(self, "unmatched_reply", f"reply: id={message.id}")
        elif isinstance(message, Pong):
            if self._ping_payload is not None and self.exchange.ping_frame is not None:
                self._ping_payload = None
        elif isinstance(message, ErrorReply):
            with self.lock:
                outcome = self.channel.on_error(message.id, message.message, message.streams, message.subscribed)
            detail = f"code={message.code}: id={message.id} {message.message}"
            if outcome.request is not None:
                detail += f" (for {outcome.request.method} of {len(outcome.request.streams)} streams)"
            self._observer.on_event(self, "error_frame", detail)
        elif isinstance(message, Unrecognised):
            self._observer.on_event(self, "unrecognised", f"{message.kind}: {message.detail}")

    def _close_socket(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                ws.abort()
            except (OSError, websocket.WebSocketException):
                pass


def _close_details(payload: bytes) -> tuple[int | None, str]:
    if len(payload) < 2:
        return None, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")[:120]
