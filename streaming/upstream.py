"""UpstreamConnection: one Binance combined-stream connection and its reader task.

The reader connects on the /market route, answers server pings (echoing the payload), hands every frame to
``binance.parse_message``, passes ticker batches to the sink, settles control replies, reconnects after drops
with backoff, and closes a connection that carries streams but has been silent too long (watchdog).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import websocket

from streaming.binance import (
    ErrorReply,
    Reply,
    TickerBatch,
    Unrecognised,
    control_request,
    market_stream_url,
    parse_message,
    symbol_of_stream,
)
from streaming.control import ControlChannel
from streaming.pacing import backoff

__all__ = ["UpstreamConnection", "UpstreamStatus", "TaskRunner", "UpstreamObserver"]

log = logging.getLogger(__name__)

# How long a blocking receive waits before the reader checks its stop event and watchdog.
RECEIVE_POLL = 0.5
CONNECT_TIMEOUT = 10.0
# Streams named in the connection URL; the rest are added with paced SUBSCRIBE requests.
URL_STREAM_LIMIT = 100
# Unanswered control requests older than this mean the connection is broken.
REPLY_TIMEOUT = 10.0
# A connection that stayed up this long resets the reconnect backoff.
HEALTHY_AFTER = 60.0
MAX_RECONNECT_DELAY = 60.0


class TaskRunner(Protocol):
    """Background-task primitives of the async mode in use (Flask-SocketIO's, in production)."""

    def start(self, target: Callable[..., object], *args: object) -> object: ...

    def sleep(self, seconds: float) -> None: ...


class UpstreamObserver(Protocol):
    """What the connection reports to (the pool, which forwards to fan-out and metrics)."""

    def on_tickers(self, batch: TickerBatch) -> None: ...

    def on_event(self, connection: "UpstreamConnection", event: str, detail: str = "") -> None: ...

    def on_pool_error(self) -> None: ...


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


class UpstreamConnection:
    """One connection to ``{base}/market/stream``. Its channel is guarded by ``lock``."""

    def __init__(
        self,
        index: int,
        base_url: str,
        channel: ControlChannel,
        observer: UpstreamObserver,
        tasks: TaskRunner,
        reconnect_delay: float,
        stale_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.base_url = base_url
        self.channel = channel
        self.lock = threading.Lock()
        self._observer = observer
        self._tasks = tasks
        self._reconnect_delay = reconnect_delay
        self._stale_timeout = stale_timeout
        self._clock = clock
        self._stop = threading.Event()
        self._done = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._send_lock = threading.Lock()
        self.state = "idle"
        self.url = market_stream_url(base_url)
        self.connected_since: float | None = None
        self.last_message_at: float | None = None
        self.messages = 0
        self.reconnects = 0

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._done.clear()
        self._tasks.start(self._run)

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the reader to finish, close the socket, and wait for it; returns whether it finished."""
        self._stop.set()
        self._close_socket()
        return self._done.wait(timeout)

    def reconnect(self, reason: str) -> None:
        """Drop the current socket; the reader reconnects (used for unanswered requests, rotation)."""
        log.warning("upstream %d: closing connection (%s)", self.index, reason)
        self.state = "closing"  # no more requests on it; the reader reconnects
        self._observer.on_event(self, "forced_close", reason.split(" ")[0])
        self._close_socket()

    def symbols(self) -> list[str]:
        """The symbols this connection is meant to carry."""
        with self.lock:
            streams = list(self.channel.wanted)
        return sorted(filter(None, map(symbol_of_stream, streams)))

    def status(self) -> UpstreamStatus:
        with self.lock:
            streams = len(self.channel.active)
        return UpstreamStatus(
            self.index, self.state, self.url, streams, self.connected_since, self.last_message_at,
            self.messages, self.reconnects,
        )

    # -- sending ----------------------------------------------------------------------------------------------
    def send_due_requests(self) -> float:
        """Send the control requests the channel allows now; return seconds until it may send again."""
        ws = self._ws
        if ws is None or self.state != "live":
            return 0.2
        while True:
            with self.lock:
                request = self.channel.next_request()
                overdue = self.channel.overdue(REPLY_TIMEOUT)
                delay = self.channel.pace_delay()
            if overdue:
                self.reconnect(f"no reply to request id {overdue[0].id} within {REPLY_TIMEOUT:g}s")
                return 0.2
            if request is None:
                return max(delay, 0.05)
            frame = control_request(request.method, request.id, request.streams)
            try:
                with self._send_lock:
                    ws.send(frame)
            except (OSError, websocket.WebSocketException) as exc:
                log.warning("upstream %d: sending %s failed: %s", self.index, request.method, exc)
                self._close_socket()
                return 0.2
            log.info(
                "upstream %d: %s id=%d streams=%d", self.index, request.method, request.id, len(request.streams)
            )
            self._observer.on_event(self, "request_sent", request.method)

    # -- the reader task --------------------------------------------------------------------------------------
    def _run(self) -> None:
        delays = backoff(self._reconnect_delay, max(MAX_RECONNECT_DELAY, self._reconnect_delay))
        try:
            while not self._stop.is_set():
                reason = self._session()
                if self._stop.is_set():
                    break
                if self.connected_since is not None and self._clock() - self.connected_since >= HEALTHY_AFTER:
                    delays = backoff(self._reconnect_delay, max(MAX_RECONNECT_DELAY, self._reconnect_delay))
                self.connected_since = None
                self.state = "reconnecting"
                self.reconnects += 1
                delay = next(delays)
                log.warning("upstream %d: %s; reconnecting in %.1fs", self.index, reason, delay)
                self._observer.on_event(self, "reconnect", reason.split(":")[0])
                self._stop.wait(delay)
        finally:
            self.state = "stopped"
            self._done.set()

    def _session(self) -> str:
        """One connection, from open to close; returns why it ended (first word is a bounded category)."""
        with self.lock:
            initial = sorted(self.channel.wanted - self.channel.rejected)[:URL_STREAM_LIMIT]
        url = market_stream_url(self.base_url, initial)
        self.state = "connecting"
        try:
            ws = websocket.create_connection(url, timeout=CONNECT_TIMEOUT, enable_multithread=True)
        except (OSError, websocket.WebSocketException) as exc:
            return f"connect_failed: {exc}"
        ws.settimeout(RECEIVE_POLL)
        with self.lock:
            self.channel.connected(initial)
        self._ws = ws
        self.url = url.split("?")[0]
        self.connected_since = self.last_message_at = self._clock()
        self.state = "live"
        log.info("upstream %d: connected to %s with %d streams", self.index, self.url, len(initial))
        self._observer.on_event(self, "connected")
        try:
            return self._read(ws)
        finally:
            self._ws = None
            with self.lock:
                self.channel.disconnected()
            try:
                ws.close(timeout=1)
            except (OSError, websocket.WebSocketException):
                pass
            ws.shutdown()  # close() skips this when the peer already ended the connection

    def _read(self, ws: websocket.WebSocket) -> str:
        while not self._stop.is_set():
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
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
                # websocket-client answers a ping itself, with a pong echoing its payload
                if opcode not in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    self._handle(frame.data)
            silence = self._silence()
            if silence is not None:
                self._observer.on_event(self, "stale")
                return f"stale: no data for {silence:.0f}s"
        return "stopped"

    def _silence(self) -> float | None:
        """Seconds without data, if the connection carries streams and that is longer than the stale timeout.

        Pings, acknowledgements and error frames do not count as data: only ticker frames reset the watchdog.
        """
        silent_for = self._clock() - (self.last_message_at or self._clock())
        if silent_for <= self._stale_timeout:
            return None
        with self.lock:
            carrying = bool(self.channel.active)
        return silent_for if carrying else None

    def _handle(self, data: bytes | str) -> None:
        message = parse_message(data)
        if isinstance(message, TickerBatch):
            self.last_message_at = self._clock()
            self.messages += 1
            self._observer.on_tickers(message)
        elif isinstance(message, Reply):
            with self.lock:
                outcome = self.channel.on_reply(message.id)
            if outcome.request is None:
                self._observer.on_event(self, "unmatched_reply", str(message.id))
        elif isinstance(message, ErrorReply):
            with self.lock:
                outcome = self.channel.on_error(message.id, message.message)
            detail = f"code={message.code} id={message.id} {message.message}"
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
