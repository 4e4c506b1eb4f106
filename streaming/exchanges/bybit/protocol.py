"""The Bybit v5 public linear protocol, without I/O: the URL, control requests, the heartbeat and the session
that classifies one connection's frames. Pure.

From https://bybit-exchange.github.io/docs/v5/ws/connect: requests ``{"req_id","op","args"}``, acks
``{"success","ret_msg","conn_id","req_id","op"}``, the ping ``{"req_id","op":"ping"}`` (every 20 s) answered
``{"success":true,"ret_msg":"pong",...,"op":"ping"}`` on linear (``{"op":"pong","args":[...]}`` elsewhere).
The documentation shows no refusal; Bybit answers one with ``"success": false`` and a ``ret_msg`` such as
``error:handler not found,topic:tickers.FOO`` or ``error:already subscribed,topic:tickers.BTCUSDT``
(the forms SDKs and clients record), which name the topics.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from streaming.core.channels import Kind
from streaming.core.errors import ProtocolError
from streaming.exchanges.bybit.merge import BookMerge, TickerMerge, TradeSequence
from streaming.exchanges.bybit.topics import channel_of_stream
from streaming.exchanges.fields import millis
from streaming.exchanges.messages import ErrorReply, Message, Pong, Reply, Unrecognised

__all__ = ["HEARTBEAT_INTERVAL", "BybitSession", "control_request", "parse_control", "ping_frame", "stream_url"]

HEARTBEAT_INTERVAL = 20.0  # seconds: "Connect", "we recommend that you send the ping heartbeat packet every 20 s"
_OPS = {"SUBSCRIBE": "subscribe", "UNSUBSCRIBE": "unsubscribe"}
_REQUEST_ID = re.compile(r"0|[1-9][0-9]{0,18}")  # the service's ids, as decimal strings
_NAMED = re.compile(r"error:(?P<reason>[^,;]*),topic:(?P<topics>[^;]*)")  # one clause naming topics
_BRACKETED = re.compile(r"\[(?P<topics>[^\]]*)\]")  # "Invalid symbol :[tickers.FOO]" (older answers)
_TOPIC = re.compile(r"[A-Za-z0-9_.:/-]{1,100}")
ALREADY_SUBSCRIBED = "already subscribed"
MAX_MESSAGE = 300


def stream_url(host: str, route: str, streams: Iterable[str] = ()) -> str:
    """The connection's URL, host + route (``wss://stream.bybit.com/v5/public/linear``): Bybit takes no topics
    in its URL, so ``streams`` must be empty (they are subscribed by request)."""
    if any(True for _ in streams):
        raise ValueError("Bybit takes no topics in its URL: subscribe them with control requests")
    return host.rstrip("/") + route


def control_request(method: str, request_id: int, streams: Iterable[str] = ()) -> str:
    """A control frame: ``{"req_id":"7","op":"subscribe","args":["tickers.BTCUSDT"]}``."""
    op = _OPS.get(method)
    if op is None:
        raise ValueError(f"Bybit has no {method!r} request; use SUBSCRIBE or UNSUBSCRIBE")
    if request_id < 0:
        raise ValueError("request id must be an unsigned integer")
    return json.dumps({"req_id": str(request_id), "op": op, "args": list(streams)}, separators=(",", ":"))


def ping_frame(request_id: int) -> str:
    """The heartbeat: ``{"req_id":"7","op":"ping"}``, answered by a Pong."""
    if request_id < 0:
        raise ValueError("request id must be an unsigned integer")
    return json.dumps({"req_id": str(request_id), "op": "ping"}, separators=(",", ":"))


def _request_id(value: object) -> int | None:
    """The service's integer id of a ``req_id`` it sent; None for "" or another client's id."""
    return int(value) if isinstance(value, str) and _REQUEST_ID.fullmatch(value) else None


def _named_topics(message: str) -> tuple[list[str], list[str]] | None:
    """``(refused, already subscribed)`` topics a refusal names, or None when it names none recognisably."""
    refused: list[str] = []
    already: list[str] = []
    for clause in _NAMED.finditer(message):
        topics = [topic.strip() for topic in clause.group("topics").split(",") if topic.strip()]
        if not topics or not all(_TOPIC.fullmatch(topic) for topic in topics):
            return None
        (already if clause.group("reason").strip() == ALREADY_SUBSCRIBED else refused).extend(topics)
    if not refused and not already:
        for bracket in _BRACKETED.finditer(message):
            topics = [topic.strip() for topic in bracket.group("topics").split(",") if topic.strip()]
            if not topics or not all(_TOPIC.fullmatch(topic) for topic in topics):
                return None
            refused.extend(topics)
    return (refused, already) if refused or already else None


def parse_control(frame: Mapping[str, Any]) -> Message:
    """Classify an ack, a refusal or a pong (a decoded frame without ``topic``). Never raises.

    Bybit refuses a whole request for one bad or already subscribed topic (seen in ccxt/ccxt#30284), so a
    refusal is always an ErrorReply: with the topics it names as refused in ``streams`` and those it names as
    already subscribed in ``subscribed`` (the rest of the request is asked again); one that names none refuses
    the whole request (``streams`` None)."""
    op = frame.get("op")
    success = frame.get("success")
    raw_message = frame.get("ret_msg")
    message = raw_message[:MAX_MESSAGE] if isinstance(raw_message, str) else ""
    request_id = _request_id(frame.get("req_id"))
    if op == "pong" or (op == "ping" and success is True):
        return Pong()
    if success is True and op in _OPS.values():
        return Reply(request_id, message)
    if success is False:
        code = frame.get("ret_code", frame.get("retCode"))
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        named = _named_topics(raw_message) if isinstance(raw_message, str) and len(raw_message) <= 10_000 else None
        if named is None:
            return ErrorReply(request_id, code, message)
        refused, already = named
        return ErrorReply(request_id, code, message, tuple(refused), tuple(already))
    if success is True:
        return Unrecognised("unknown_reply", f"op {str(op)[:40]}")
    return Unrecognised("unknown_frame", ",".join(sorted(map(str, frame))[:10])[:200])


class BybitSession:
    """One connection's frames -> messages, with the merged state of its topics (see ``merge``). Not
    thread-safe: the connection's reader is its only caller."""

    def __init__(self) -> None:
        self._tickers = TickerMerge()
        self._books = BookMerge()
        self._trades = TradeSequence()

    def decode(self, data: str | bytes) -> Message:
        """Classify one text frame. Never raises."""
        try:
            frame = json.loads(data)
        except (ValueError, TypeError, RecursionError) as exc:
            return Unrecognised("invalid_json", str(exc)[:200])
        return self.parse(frame)

    def parse(self, frame: object) -> Message:
        """Classify one frame already decoded from JSON. Never raises."""
        if not isinstance(frame, dict):
            return Unrecognised("not_an_object", type(frame).__name__)
        if "topic" in frame:
            return self._data(frame)
        return parse_control(frame)

    def _data(self, frame: Mapping[str, Any]) -> Message:
        topic = frame["topic"]
        if not isinstance(topic, str):
            return Unrecognised("bad_topic", repr(topic)[:80])
        channel = channel_of_stream(topic)
        if channel is None:
            return Unrecognised("unknown_topic", topic[:80])
        try:
            kind = frame.get("type")
            if kind not in ("snapshot", "delta"):
                raise ProtocolError(f"field 'type' must be 'snapshot' or 'delta', got {kind!r:.40}")
            if "data" not in frame:
                raise ProtocolError("the frame has no 'data'")
            event_time = millis(frame, "ts")
            if channel.kind is Kind.TICKER:
                return self._tickers.apply(topic, channel.symbol, kind, frame["data"], event_time)
            if channel.kind is Kind.TRADE:
                return self._trades.apply(topic, channel.symbol, frame["data"], event_time)
            transaction_time = millis(frame, "cts") if "cts" in frame else event_time
            return self._books.apply(topic, channel.symbol, kind, frame["data"], event_time, transaction_time)
        except ProtocolError as exc:
            return Unrecognised("bad_payload", f"{topic}: {exc}"[:200])
