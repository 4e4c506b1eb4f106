"""Socket.IO handlers: validate the client's input, call the service, answer. They never raise."""
from __future__ import annotations

import json
import logging
import math
import time
from typing import Any
from urllib.parse import parse_qs

from flask import request
from flask_socketio import SocketIO, emit

from streaming.core.auth import AuthError
from streaming.core.channels import BINANCE, DEFAULT_KINDS, KINDS, Channel, Kind, parse_kinds
from streaming.core.errors import InvalidRequestError, StreamingError
from streaming.core.history import Position
from streaming.core.limits import ABUSE, ADMIT
from streaming.core.positions import parse_since
from streaming.core.ranges import parse_kind, parse_speed, parse_time_range
from streaming.core.symbols import SymbolRequest, normalise_symbol, parse_symbol_request, shown_item
from streaming.exchanges.registry import exchange_named
from streaming.gateway.fastpath.packets import intercept_packets
from streaming.gateway.fastpath.transport import close_transport, raw_socket
from streaming.service import StreamingService, SubscribeOutcome

__all__ = ["register_events", "WELCOME"]

log = logging.getLogger(__name__)

WELCOME = "Connected to WebSocket Streaming Service"
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "*"})
MAX_SYMBOLS_IN_ERROR = 20
EVERY_KIND = tuple(KINDS)
Request = tuple[SymbolRequest, tuple[Kind, ...], dict[Channel, Position], str]  # ..., the exchange


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


def _answer(event: str, confirmation: str, outcome: SubscribeOutcome, answer: dict[str, Any]) -> dict[str, Any]:
    """Emit the confirmation (``subscribed``/``unsubscribed``) unless every item was rejected, then one ``error``
    per rejection code; return the acknowledgement (the answer, plus those errors)."""
    if outcome.symbols or not outcome.rejected:
        emit(confirmation, answer)
    errors = []
    for code, items in outcome.rejected.items():
        reasons = "; ".join(reason for _, reason in items[:3])
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        error = _error(code, reasons + more, event=event, symbols=[item for item, _ in items[:MAX_SYMBOLS_IN_ERROR]])
        emit("error", error)
        errors.append(error)
    return {**answer, "errors": errors} if errors else answer


def _refusal(service: StreamingService, data: str, environ: dict[str, Any]) -> str | None:
    """Why a CONNECT packet is refused (None: accepted). The token comes from the auth payload or ?token=."""
    token: object = None
    body = data[1:]
    if body.startswith("/"):  # a namespace: "/name,{...}"
        body = body.partition(",")[2]
    if body:
        try:
            auth = json.loads(body)
        except ValueError:
            auth = None
        if isinstance(auth, dict):
            token = auth.get("token")
    if token is None:
        token = (parse_qs(environ.get("QUERY_STRING", "")).get("token") or [None])[0]
    try:
        service.auth.check(token)
    except AuthError as exc:
        return str(exc)
    return None


def guard_packets(socketio: SocketIO, service: StreamingService) -> None:
    """Refuse connections the service does not admit (shutting down, too many, unauthenticated) with a
    connect_error, and close the connection of a client that sends a malformed Socket.IO packet, with a log
    line, not a traceback (socket.io-client itself closes the connection on a packet it cannot parse)."""
    reported: set[str] = set()

    def refuse(data: str, environ: dict[str, Any]) -> tuple[str, str] | None:
        service.guard.handshakes.done(raw_socket(environ))  # the connection's handshake is over, admitted or not
        code, refusal = service.connection_refusal(environ.get("REMOTE_ADDR", "")) or ("", None)
        if refusal is None and service.auth.enabled:
            refusal, code = _refusal(service, data, environ), AuthError.code
        if refusal is None:
            return None
        service.count_rejection(code)
        return code, refusal

    def malformed(exc: Exception) -> None:
        service.count_rejection("MALFORMED_PACKET")
        kind = type(exc).__name__
        if kind not in reported:  # once per kind; the counter has the rest
            reported.add(kind)
            log.warning("closing a client that sent a malformed Socket.IO packet (%s: %.80s); further ones "
                        "are only counted in rejected_inputs_total{code=\"MALFORMED_PACKET\"}", kind, exc)

    intercept_packets(socketio, refuse=refuse, malformed=malformed, reserved=RESERVED_EVENTS)


def register_events(socketio: SocketIO, service: StreamingService) -> None:
    """Attach the documented event handlers to ``socketio``."""
    guard_packets(socketio, service)

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        service.client_connected(request.sid, request.remote_addr or "")
        emit("connected", {"message": WELCOME, "client_id": request.sid})

    def on_disconnect(sid: str, *_reason: Any) -> None:
        """python-socketio's own handler, without the Flask request context Flask-SocketIO builds for every event
        (nothing here needs it): a shutdown closes thousands of clients at once."""
        try:
            service.client_disconnected(sid)
        except Exception:  # as on_error: logged; the disconnect itself goes on
            log.exception("forgetting disconnected client %s failed", sid)
            service.metrics.task_errors.labels("socketio_handler").inc()

    socketio.server.on("disconnect", on_disconnect)

    def admitted(event: str) -> dict[str, Any] | None:
        """None if the client may send this event now; else the RATE_LIMITED error, for its acknowledgement.

        While a client is refused, the error is also emitted for the first refused event and then at most once
        a second (streaming/core/limits.py); a client over the limit for longer than CLIENT_ABUSE_TIMEOUT is
        disconnected."""
        verdict = service.event_limiter.admit(request.sid)
        if verdict.outcome == ADMIT:
            return None
        service.count_rejection("RATE_LIMITED")
        limit = service.settings.client_events_per_second
        payload = _error("RATE_LIMITED", f"too many events; at most {limit:g} per second (burst "
                         f"{service.settings.client_event_burst})", event=event,
                         retry_after=math.ceil(verdict.retry_after * 1000) / 1000)  # never 0
        if verdict.notify:
            emit("error", payload)
        if verdict.outcome == ABUSE:
            timeout = service.settings.client_abuse_timeout
            log.warning("disconnecting client %s: over the event rate limit for more than %g s", request.sid,
                        timeout)
            emit("error", _error("DISCONNECTED", f"disconnected: over the event rate limit for more than "
                                 f"{timeout:g} seconds", event=event))
            close_transport(socketio, socketio.server.manager.eio_sid_from_sid(request.sid, "/"))
        return payload

    def parse(event: str, data: Any, default: tuple[Kind, ...]) -> Request | dict:
        """The validated request, its streams (``default`` when it names none) and its ``since``, or (already
        emitted) the error payload for a malformed or refused one. A bad ``streams`` or ``since`` refuses the
        whole request."""
        refused = admitted(event)
        if refused is not None:
            return refused
        try:
            limit = service.settings.max_symbols_per_request
            symbols = parse_symbol_request(data, limit)
            exchange = exchange_named(data.get("exchange", BINANCE), service.exchanges).name
            kinds = parse_kinds(data.get("streams"), default=default)
            since = parse_since(data.get("since"), limit * len(KINDS)) if event == "subscribe" else {}
            return symbols, kinds, since, exchange
        except InvalidRequestError as exc:
            service.count_rejection(exc.code)
            payload = _error(exc.code, str(exc), event=event)
            emit("error", payload)
            return payload

    @socketio.on("subscribe")
    def on_subscribe(data: Any = None, *_extra: Any) -> dict[str, Any]:
        parsed = parse("subscribe", data, DEFAULT_KINDS)
        if isinstance(parsed, dict):
            return parsed
        symbols, kinds, since, exchange = parsed
        outcome = service.check(request.sid, symbols, exchange)
        answer: dict[str, Any] = {"symbols": outcome.symbols, "streams": [str(kind) for kind in kinds],
                                  "exchange": exchange, "message": f"Subscribed to {len(outcome.symbols)} symbols"}
        ack: dict[str, Any] = {}

        def confirm(positions: dict[str, Position], recovered: dict[str, bool]) -> None:
            if service.history is not None:
                answer["positions"] = {key: {"offset": position.offset, "epoch": position.epoch}
                                       for key, position in positions.items()}
                answer["recovered"] = recovered
            ack.update(_answer("subscribe", "subscribed", outcome, answer))

        # the answer, then what each channel missed or its latest update, then live ones
        service.join(request.sid, outcome.symbols, kinds, since, confirm, exchange)
        return ack

    @socketio.on("unsubscribe")
    def on_unsubscribe(data: Any = None, *_extra: Any) -> dict[str, Any]:
        parsed = parse("unsubscribe", data, EVERY_KIND)  # without streams: every stream of those symbols
        if isinstance(parsed, dict):
            return parsed
        symbols, kinds, _, exchange = parsed
        outcome = service.unsubscribe(request.sid, symbols, kinds, exchange)
        answer = {"symbols": outcome.symbols, "streams": [str(kind) for kind in kinds], "exchange": exchange,
                  "message": f"Unsubscribed from {len(outcome.symbols)} symbols"}
        return _answer("unsubscribe", "unsubscribed", outcome, answer)

    @socketio.on("replay")
    def on_replay(data: Any = None, *_extra: Any) -> dict[str, Any]:
        """Start a replay of a stream's history: the ack has its replay_id; replay_data and replay_end follow."""
        refused = admitted("replay")
        if refused is not None:
            return refused
        try:
            if service.replays is None:
                raise InvalidRequestError("history is off on this server (HISTORY_ENABLED=false): nothing to replay")
            if not isinstance(data, dict):
                raise InvalidRequestError('expected an object like {"symbol": "BTCUSDT", "stream": "trade", '
                                          '"from": 1764770000000, "to": 1764770060000, "speed": 10}')
            symbol = normalise_symbol(data.get("symbol"))
            exchange = exchange_named(data.get("exchange", BINANCE), service.exchanges).name
            service.catalogs[exchange].check(symbol)
            kind = parse_kind(data.get("stream"))
            start, end = parse_time_range(data.get("from"), data.get("to"))
            speed = parse_speed(data.get("speed"))
            end = min(end, time.time())  # what is recorded up to now; live updates come by subscribing
            replay_id = service.replays.start(request.sid, Channel(exchange, kind, symbol), start, end, speed)
        except StreamingError as exc:
            service.count_rejection(exc.code)
            payload = _error(exc.code, str(exc), event="replay")
            emit("error", payload)
            return payload
        return {"replay_id": replay_id, "symbol": symbol, "exchange": exchange, "stream": str(kind),
                "from": round(start * 1000),
                "to": round(end * 1000), "speed": speed}

    @socketio.on("replay_stop")
    def on_replay_stop(data: Any = None, *_extra: Any) -> dict[str, Any]:
        refused = admitted("replay_stop")
        if refused is not None:
            return refused
        replay_id = data.get("replay_id") if isinstance(data, dict) else None
        if isinstance(replay_id, str) and service.replays is not None and service.replays.stop(request.sid,
                                                                                                replay_id):
            return {"replay_id": replay_id, "stopped": True}
        service.count_rejection("UNKNOWN_REPLAY")
        payload = _error("UNKNOWN_REPLAY", f"no replay {shown_item(replay_id)!r} of yours is running; send the "
                         "replay_id from the replay acknowledgement", event="replay_stop")
        emit("error", payload)
        return payload

    @socketio.on("*")
    def on_unknown(event: Any, *_args: Any) -> dict[str, Any]:
        refused = admitted(str(event)[:40])
        if refused is not None:
            return refused
        service.count_rejection("UNKNOWN_EVENT")
        shown = str(event)[:40]
        payload = _error(
            "UNKNOWN_EVENT", f"unknown event {shown!r}; this service handles 'subscribe', 'unsubscribe', "
            "'replay' and 'replay_stop'",
            event=shown,
        )
        emit("error", payload)
        return payload

    @socketio.on_error_default
    def on_error(exc: Exception) -> dict[str, Any]:
        log.exception("Socket.IO handler failed: %s", exc)
        service.metrics.task_errors.labels("socketio_handler").inc()
        payload = _error("INTERNAL_ERROR", "the server could not handle this message; it has been logged")
        emit("error", payload)
        return payload
