"""One WebSocket connection of the fake exchange: reader, tick writer, server pings, lifetime, closes, injected frames.

The per-connection I/O shell; what to answer comes from protocol.py, what to send from market.py. It reports to
its host (the FakeBinance) through the small `Host` interface, so it never touches the host's internals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from tests.fakes.market import (
    MarketSnapshot,
    Quote,
    agg_trade_payload,
    book_ticker_payload,
    mini_ticker_payload,
    ticker_payload,
)
from tests.fakes.protocol import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    ERROR_INVALID_JSON,
    REASON_INVALID_JSON,
    REASON_LIFETIME,
    REASON_PONG_TIMEOUT,
    REASON_TOO_MANY_REQUESTS,
    REASON_TOO_MANY_STREAMS,
    Endpoint,
    PingTracker,
    RateWindow,
    Silence,
    Subscription,
    data_feed,
    decode_request,
    frame_text,
    handle_text,
    reply_text,
)

CLOSE_HANDSHAKE_TIMEOUT = 1.0  # seconds the fake waits for a client's close frame after sending its own
MAX_PENDING_TICKS = 20  # per connection; a client reading slower than this misses ticks
_PAYLOAD_BUILDERS: Mapping[str, Callable[[Quote, int], dict[str, Any]]] = MappingProxyType({
    "ticker": ticker_payload,
    "miniTicker": mini_ticker_payload,
    "bookTicker": book_ticker_payload,
    "aggTrade": agg_trade_payload,
})


@dataclass(frozen=True)
class Limits:
    """Per-connection limits and timers (facts §4), in seconds and counts."""

    max_streams: int
    max_incoming_per_second: int
    ping_interval: float
    pong_timeout: float
    lifetime: float


@dataclass(frozen=True)
class Tick:
    """One market tick on its way to the connections."""

    snapshot: MarketSnapshot
    event_ms: int  # wall-clock ms when the tick happened: the payloads' `E`, so a delivery delay shows as latency


class Host(Protocol):
    """What a connection needs from the fake that owns it (called on the event loop)."""

    def silence(self) -> Silence: ...

    def withholds_replies(self) -> bool: ...

    def count_frame(self, conn_id: int) -> None: ...

    def record_control(self, conn_id: int, message: object) -> None: ...

    def record_streams(self, conn_id: int, streams: tuple[str, ...]) -> None: ...

    def record_sent(self, payload: Any) -> None: ...

    def connection_closed(self, conn_id: int, code: int, reason: str) -> None: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def tick_payloads(route: str, state: Subscription, snapshot: MarketSnapshot, event_ms: int,
                  silence: Silence = Silence()) -> list[tuple[str, Any]]:
    """(stream, payload) for every data-carrying stream of a connection at one tick, in subscription order,
    without what `silence` withholds."""
    frames: list[tuple[str, Any]] = []
    for stream in state.streams:
        feed = data_feed(route, stream)
        if feed is None:
            continue
        if feed.kind == "ticker_arr":
            payload: Any = [ticker_payload(q, event_ms) for q in (*snapshot.usd_m.values(), *snapshot.coin_m)]
        elif feed.kind == "miniTicker_arr":
            payload = [mini_ticker_payload(q, event_ms) for q in (*snapshot.usd_m.values(), *snapshot.coin_m)]
        else:
            quote = snapshot.usd_m.get(feed.symbol or "")
            if quote is None:
                continue  # a well-formed stream of an unknown symbol: acknowledged, then silent (facts §3)
            payload = _PAYLOAD_BUILDERS[feed.kind](quote, event_ms)
        payload = silence.audible(payload)
        if payload is not None:
            frames.append((stream, payload))
    return frames


class Connection:
    """One accepted WebSocket connection; lives on the fake's event loop."""

    def __init__(self, host: Host, conn_id: int, ws: web.WebSocketResponse, transport: asyncio.Transport,
                 endpoint: Endpoint, limits: Limits) -> None:
        loop = asyncio.get_running_loop()
        self.host = host
        self.id = conn_id
        self.ws = ws
        self.transport = transport
        self.route = endpoint.route
        self.limits = limits
        self.state = Subscription(endpoint.streams, endpoint.combined)
        self.rate = RateWindow(limits.max_incoming_per_second)
        self.pings = PingTracker(limits.ping_interval, limits.pong_timeout, loop.time())
        self.ticks: asyncio.Queue[Tick] = asyncio.Queue(MAX_PENDING_TICKS)
        self.closing = False
        self.server_close: tuple[int, str] | None = None
        self.close_task: asyncio.Task[bool] | None = None
        self.finished: asyncio.Future[None] = loop.create_future()

    async def run(self) -> None:
        """Read frames until the connection ends, then report how it ended."""
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._write_ticks()), loop.create_task(self._ping()),
                   loop.create_task(self._expire())]
        if len(self.state.streams) > self.limits.max_streams:
            self.close_soon(CLOSE_POLICY, REASON_TOO_MANY_STREAMS)
        client_close: tuple[int, str] | None = None
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.CLOSE:
                    client_close = (int(msg.data) or 1005, msg.extra or "")
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                await self._on_frame(msg.type, msg.data, loop.time())
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._finish_close()
            code, reason = self.server_close or client_close or (CLOSE_ABNORMAL, "connection lost")
            self.host.connection_closed(self.id, code, reason)
            self.finished.set_result(None)

    def offer(self, tick: Tick) -> None:
        """Queue one tick for the writer; dropped when the client is too slow."""
        if self.closing:
            return
        try:
            self.ticks.put_nowait(tick)
        except asyncio.QueueFull:
            pass

    async def inject(self, frame: str | bytes) -> bool:
        """Send `frame` as it is (text for str, binary for bytes) at once; False when the connection is going away.

        Not a tick: nothing is recorded, and the connection stays open whatever the frame says.
        """
        if self.closing:
            return False
        if isinstance(frame, bytes):
            return await self._guard(self.ws.send_bytes(frame))
        return await self._send(frame)

    def close_soon(self, code: int, reason: str) -> None:
        """Send a close frame (after anything already written) and end the connection. First call wins."""
        if self.closing:
            return
        self.closing = True
        self.server_close = (code, reason)
        self.close_task = asyncio.get_running_loop().create_task(
            self.ws.close(code=code, message=reason.encode("utf-8")))

    def drop(self) -> None:
        """Abort the TCP connection without a close frame."""
        if not self.closing:
            self.closing = True
            self.server_close = (CLOSE_ABNORMAL, "dropped by fake")
        self.transport.abort()

    async def _finish_close(self) -> None:
        task = self.close_task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=CLOSE_HANDSHAKE_TIMEOUT + 1.0)
        if not done:
            self.transport.abort()
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _on_frame(self, kind: WSMsgType, data: Any, now: float) -> None:
        self.host.count_frame(self.id)
        if self.closing or self.rate.hit(now):  # recorded, never answered
            if kind == WSMsgType.TEXT:
                self.host.record_control(self.id, decode_request(data))
            self.close_soon(CLOSE_POLICY, REASON_TOO_MANY_REQUESTS)  # no-op when already closing
        elif kind == WSMsgType.TEXT:
            await self._on_text(data)
        elif kind == WSMsgType.BINARY:
            error = {"error": {"code": ERROR_INVALID_JSON,
                               "msg": "Invalid JSON: binary frame; send requests as JSON text frames"}}
            await self._send(reply_text(error))
            self.close_soon(CLOSE_POLICY, REASON_INVALID_JSON)
        elif kind == WSMsgType.PING:
            await self._guard(self.ws.pong(data))
        elif kind == WSMsgType.PONG:
            self.pings.pong(bytes(data))

    async def _on_text(self, text: str) -> None:
        if self.host.withholds_replies():  # lost by the exchange: recorded, never applied nor answered
            self.host.record_control(self.id, decode_request(text))
            return
        outcome = handle_text(text, self.state, self.limits.max_streams)
        self.host.record_control(self.id, outcome.message)
        if outcome.state != self.state:
            self.state = outcome.state
            self.host.record_streams(self.id, outcome.state.streams)
        if outcome.reply is not None:
            await self._send(reply_text(outcome.reply))
        if outcome.close is not None:
            self.close_soon(*outcome.close)

    async def _send(self, text: str) -> bool:
        return await self._guard(self.ws.send_str(text))

    async def _guard(self, write: Awaitable[None]) -> bool:
        """Await a write; False when the connection is already going away."""
        try:
            await write
        except ConnectionError:
            return False
        return True

    async def _write_ticks(self) -> None:
        while True:
            tick = await self.ticks.get()
            silence = self.host.silence()
            if silence.everything or self.closing:
                continue
            for stream, payload in tick_payloads(self.route, self.state, tick.snapshot, tick.event_ms, silence):
                self.host.record_sent(payload)
                if not await self._send(frame_text(stream, payload, self.state.combined)):
                    return

    async def _ping(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closing:
            await asyncio.sleep(max(0.0, self.pings.next_wakeup() - loop.time()))
            now = loop.time()
            if self.pings.overdue(now):
                self.close_soon(CLOSE_POLICY, REASON_PONG_TIMEOUT)
                return
            if self.pings.ping_due(now) and not self.closing:
                payload = str(now_ms()).encode("ascii")
                self.pings.sent(payload, now)
                if not await self._guard(self.ws.ping(payload)):
                    return

    async def _expire(self) -> None:
        await asyncio.sleep(self.limits.lifetime)
        self.close_soon(CLOSE_GOING_AWAY, REASON_LIFETIME)


async def wait_finished(connections: Sequence[Connection]) -> None:
    """Wait (bounded) until every connection's handler has recorded its end."""
    pending = [conn.finished for conn in connections if not conn.finished.done()]
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_HANDSHAKE_TIMEOUT + 2.0)
