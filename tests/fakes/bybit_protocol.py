"""Bybit v5 public linear protocol as the fake server sees it: the WebSocket route, topic names, the
subscribe / unsubscribe / ping requests and their answers, the per-connection args limit, heartbeat bookkeeping,
the documented limits, and REST request validation and envelopes.

Pure ("sans-I/O"): takes text, queries and times in, returns decisions; imports no socket, aiohttp or asyncio.

Sources (stored copies of Bybit's v5 documentation and of public reports about the live service):
  connect, limits, heartbeat, acks  https://bybit-exchange.github.io/docs/v5/ws/connect
  rate limits                       https://bybit-exchange.github.io/docs/v5/rate-limit
  error codes                       https://bybit-exchange.github.io/docs/v5/error
  refusal wording (live probes)     https://github.com/sieblyio/bybit-api/issues/477 (already subscribed),
                                    https://github.com/sieblyio/bybit-api/issues/561 (handler not found),
                                    https://github.com/ccxt/ccxt/issues/30284 (a refused batch subscribes nothing),
                                    https://github.com/bybit-exchange/api-usage-examples/issues/34 (undecodable frame)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tests.fakes.bybit_market import STATUSES, parse_cursor

# https://bybit-exchange.github.io/docs/v5/ws/connect: "USDT, USDC perpetual & USDT Futures:
# wss://stream.bybit.com/v5/public/linear"; the other public categories are not served by the fake.
PUBLIC_LINEAR_PATH = "/v5/public/linear"
OTHER_PUBLIC_PATHS = ("/v5/public/spot", "/v5/public/inverse", "/v5/public/option", "/v5/public/spread")
# https://bybit-exchange.github.io/docs/v5/ws/connect, "Public channel - Args limits": "for one public connection,
# you cannot have length of "args" array over 21,000 characters"; "No args limit for Futures and Spread for now"
# (so no per-request topic count for linear: that "up to 10 args" rule is Spot's).
ARGS_CHARS_LIMIT = 21_000
# https://bybit-exchange.github.io/docs/v5/rate-limit, "Websocket IP limit": "Do not establish more than 500
# connections within a 5-minute window" and "more than 1,000 connections per IP for market data" (per market).
CONNECTIONS_PER_WINDOW = 500
CONNECTION_WINDOW = 300.0
MAX_OPEN_CONNECTIONS_PER_IP = 1000
# https://bybit-exchange.github.io/docs/v5/ws/connect: "if there is no "ping-pong" and no stream data sent from
# server end, the connection will be cut off after 10 minutes"; "we recommend that you send the ping heartbeat
# packet every 20 seconds". The fake is stricter: it counts only the client's pings, data or not.
PING_TIMEOUT = 600.0
RECOMMENDED_PING_INTERVAL = 20.0
# https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook: level 1 "if 3 seconds have elapsed
# without a change in the orderbook, a `snapshot` message will be pushed again".
BOOK_RESEND_SECONDS = 3.0
# https://bybit-exchange.github.io/docs/v5/rate-limit, "HTTP IP limit": "600 requests within a 5-second window per
# IP"; over it "403, access too frequent": "terminate all HTTP sessions and wait for at least 10 minutes".
REST_LIMIT = 600
REST_WINDOW = 5.0
REST_BAN_SECONDS = 600.0
REST_TOO_FREQUENT_STATUS = 403
REST_TOO_FREQUENT_TEXT = "access too frequent"
# https://bybit-exchange.github.io/docs/v5/error: 10001 "Request parameter error", 10006 "Too many visits"
# (rate-limit page: `"retCode": 10006, "retMsg": "Too many visits!"`). Wording of 10001 answers as reported live:
# "params error: symbol invalid" (HTTP 200) and "Illegal category".
RET_OK = 0
RET_PARAMS_ERROR = 10001
RET_TOO_MANY_VISITS = 10006
MSG_SYMBOL_INVALID = "params error: symbol invalid"
MSG_ILLEGAL_CATEGORY = "Illegal category"
# Handshake refusals (not documented by Bybit: the fake's own answers, plain text like Bybit's gateway errors).
HANDSHAKE_RATE_LIMITED_STATUS = 429
HANDSHAKE_REFUSED_STATUS = 503

OPS = ("subscribe", "unsubscribe", "ping")
# Refusal wording reported from the live linear socket (module docstring): one prefix, then the topics.
ERR_HANDLER_NOT_FOUND = "error:handler not found,topic:"
ERR_ALREADY_SUBSCRIBED = "error:already subscribed,topic:"
ERR_INVALID_OP = "error:invalid op"
ERR_DECODE = "Failed to decode incoming data:"

_TOPIC = re.compile(r"(?:(?P<kind>tickers|publicTrade)|orderbook\.(?P<depth>1|50|200|1000))"
                    r"\.(?P<symbol>[A-Z0-9][A-Z0-9-]*)")
_REST_PATHS = {
    "/v5/market/tickers": "tickers",
    "/v5/market/recent-trade": "recent-trade",
    "/v5/market/orderbook": "orderbook",
    "/v5/market/instruments-info": "instruments-info",
}
# (default, max) `limit` per endpoint: recent-trade "others: [1,1000], default: 500"; orderbook "linear&inverse:
# [1, 1000]. Default: 25"; instruments-info "[1, 1000]. Default: 500" (market/recent-trade, orderbook, instrument).
_LIMITS = {"recent-trade": (500, 1000), "orderbook": (25, 1000), "instruments-info": (500, 1000)}
_CATEGORIES = ("spot", "linear", "inverse", "option")


@dataclass(frozen=True)
class Topic:
    kind: str  # "tickers" | "publicTrade" | "orderbook"
    symbol: str
    depth: int | None = None


def parse_topic(name: str) -> Topic | None:
    """The topic a well-formed name stands for (case-sensitive: "orderbook.50.btcusdt" is no topic), else None."""
    match = _TOPIC.fullmatch(name)
    if match is None:
        return None
    depth = match.group("depth")
    if depth is not None:
        return Topic("orderbook", match.group("symbol"), int(depth))
    return Topic(match.group("kind"), match.group("symbol"))


def topic_symbol(name: str) -> str | None:
    topic = parse_topic(name)
    return topic.symbol if topic is not None else None


# ---------------------------------------------------------------- WebSocket requests

@dataclass(frozen=True)
class ConnState:
    """The subscriptions of one connection, in subscription order."""

    topics: tuple[str, ...] = ()

    @property
    def args_chars(self) -> int:
        """The characters of the connection's `args` (the sum of its topic names' lengths)."""
        return sum(len(topic) for topic in self.topics)


@dataclass(frozen=True)
class Outcome:
    """What to do with one incoming text frame."""

    message: Any  # parsed JSON, or the raw text when it was not JSON (for the fake's record)
    reply: dict[str, Any] | None
    state: ConnState
    subscribed: tuple[str, ...] = ()  # topics this request added (their snapshots follow the ack)
    ping: bool = False  # a heartbeat: resets the connection's ping deadline


def reply(conn_id: str, req_id: str, op: str, success: bool, ret_msg: str) -> dict[str, Any]:
    """An answer in the documented Linear/Inverse shape (ws/connect, "Understanding the Subscription Response"
    and the pong example): {"success","ret_msg","conn_id","req_id","op"}; `req_id` is "" when none was sent."""
    return {"success": success, "ret_msg": ret_msg, "conn_id": conn_id, "req_id": req_id, "op": op}


def decode_request(text: str) -> Any:
    """The JSON value of a text frame, or the text itself when it is not JSON (for the fake's record)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def handle_text(text: str, state: ConnState, *, conn_id: str, topic_exists: Callable[[str], bool],
                args_limit: int = ARGS_CHARS_LIMIT) -> Outcome:
    """Apply one request to `state`. `topic_exists(name)` says whether a well-formed topic's symbol has topics.

    - Not JSON, not an object, a `req_id` that is no string or number, `args` that are no list of strings:
      `success:false`, `ret_msg` "Failed to decode incoming data:<why>", `op` "" (api-usage-examples#34); the
      connection stays open.
    - An `op` other than subscribe / unsubscribe / ping: "error:invalid op".
    - ping: the documented linear pong (`ret_msg` "pong", `op` "ping").
    - subscribe: all or nothing (ccxt#30284: a batch with one bad topic subscribes none of it). Unknown topics
      first ("error:handler not found,topic:A,B"), then already-subscribed ones, a repeat within the request
      included ("error:already subscribed,topic:A"), then the args limit.
    - unsubscribe: unknown topics are refused like subscribe's; the others are dropped (one not held is
      acknowledged too: the docs do not say, the fake's choice).
    """
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        return Outcome(text, _decode_error(conn_id, f"{exc.msg} at line {exc.lineno} column {exc.colno}"), state)
    if not isinstance(message, dict):
        return Outcome(message, _decode_error(conn_id, f"expected a JSON object, got {type(message).__name__}"),
                       state)
    raw_req_id = message.get("req_id", "")
    if isinstance(raw_req_id, bool) or not isinstance(raw_req_id, (str, int, float)):
        return Outcome(message, _decode_error(conn_id, "req_id must be a string (or a number)"), state)
    req_id = raw_req_id if isinstance(raw_req_id, str) else str(raw_req_id)
    op = message.get("op")
    if op not in OPS:
        return Outcome(message, reply(conn_id, req_id, op if isinstance(op, str) else "", False, ERR_INVALID_OP),
                       state)
    if op == "ping":
        return Outcome(message, reply(conn_id, req_id, "ping", True, "pong"), state, ping=True)
    args = message.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return Outcome(message, _decode_error(conn_id, "args must be a list of topic strings like "
                                                       "'tickers.BTCUSDT'"), state)
    unknown = [name for name in dict.fromkeys(args) if parse_topic(name) is None or not topic_exists(name)]
    if unknown:
        return Outcome(message, reply(conn_id, req_id, op, False, ERR_HANDLER_NOT_FOUND + ",".join(unknown)), state)
    if op == "unsubscribe":
        gone = set(args)
        kept = ConnState(tuple(name for name in state.topics if name not in gone))
        return Outcome(message, reply(conn_id, req_id, op, True, ""), kept)
    held = set(state.topics)
    repeated: list[str] = []
    seen: set[str] = set()
    for name in args:
        if name in held or name in seen:
            repeated.append(name)
        seen.add(name)
    if repeated:
        return Outcome(message, reply(conn_id, req_id, op, False,
                                      ERR_ALREADY_SUBSCRIBED + ",".join(dict.fromkeys(repeated))), state)
    wanted = replace(state, topics=state.topics + tuple(args))
    if wanted.args_chars > args_limit:
        msg = (f"error:args length {wanted.args_chars} over the limit of {args_limit} characters per connection,"
               f"topic:{','.join(args)}")
        return Outcome(message, reply(conn_id, req_id, op, False, msg), state)
    return Outcome(message, reply(conn_id, req_id, op, True, ""), wanted, subscribed=tuple(args))


def _decode_error(conn_id: str, why: str) -> dict[str, Any]:
    return reply(conn_id, "", "", False, ERR_DECODE + why)


class Heartbeat:
    """The client's pings and the deadline they set (times in any one monotonic clock, seconds)."""

    def __init__(self, timeout: float, now: float) -> None:
        if not timeout > 0:
            raise ValueError(f"ping timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = timeout
        self.last = now  # the connection's opening counts as the first beat

    def beat(self, now: float) -> None:
        self.last = now

    def deadline(self) -> float:
        return self.last + self.timeout

    def overdue(self, now: float) -> bool:
        return now >= self.deadline()


def ws_category(path: str) -> str | None:
    """"linear" for the fake's WebSocket route, the category of another documented public route, else None."""
    if path == PUBLIC_LINEAR_PATH:
        return "linear"
    if path in OTHER_PUBLIC_PATHS:
        return path.rsplit("/", 1)[1]
    return None


def rate_limited_handshake_text(limit: int, window: float, retry_after: float) -> str:
    return (f"Too many connection attempts: more than {limit} in {window:g} s from this IP "
            f"(Bybit: 'Do not establish more than 500 connections within a 5-minute window'); "
            f"retry after {retry_after:.1f} s")


def too_many_open_text(limit: int) -> str:
    return f"Too many connections: {limit} WebSocket connections from this IP are open already"


def refused_handshake_text(remaining: float) -> str:
    return (f"Service unavailable: WebSocket connections are refused for another {remaining:.1f} s "
            "(FakeBybit.refuse_connections)")


# ---------------------------------------------------------------- REST

@dataclass(frozen=True)
class RestQuery:
    """A valid market-data request."""

    endpoint: str  # "tickers" | "recent-trade" | "orderbook" | "instruments-info"
    symbol: str | None
    limit: int
    status: str | None = None  # instruments-info only
    after: str | None = None  # instruments-info only: the `last` of the cursor


@dataclass(frozen=True)
class RestRefusal:
    """A refused request: HTTP 200 with a `retCode` envelope, or (body a str) an HTTP error with a text body."""

    http_status: int
    ret_code: int = RET_PARAMS_ERROR
    ret_msg: str = ""
    result: Mapping[str, Any] | None = None
    text: str | None = None


def envelope(ret_code: int, ret_msg: str, result: Any, now_ms: int) -> dict[str, Any]:
    """The v5 REST body: {"retCode","retMsg","result","retExtInfo","time"} (every market page's example)."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result if result is not None else {},
            "retExtInfo": {}, "time": now_ms}


def parse_rest(method: str, path: str, query: Mapping[str, str], *, has_market: Callable[[str], bool],
               is_instrument: Callable[[str], bool]) -> RestQuery | RestRefusal:
    """Validate a request to one of the four served market endpoints.

    Unknown paths get HTTP 404 (text); a method other than GET HTTP 400 (error page: "Need to send the request
    with GET / POST"). Parameter errors are HTTP 200 with retCode 10001: a missing or unknown `category`
    "Illegal category"; a missing, unknown, Closed or lower-case `symbol` "params error: symbol invalid" (docs:
    "uppercase only"); a `limit` outside the documented range, a bad `status` or `cursor` name what is wrong.
    """
    endpoint = _REST_PATHS.get(path)
    if endpoint is None:
        return RestRefusal(404, text=f"404 page not found: {path}; FakeBybit serves {', '.join(sorted(_REST_PATHS))}")
    if method != "GET":
        return RestRefusal(400, text=f"Bad request: {method} {path}; the market endpoints take GET")
    category = query.get("category")
    if category not in _CATEGORIES:
        return RestRefusal(200, ret_msg=MSG_ILLEGAL_CATEGORY)
    if category != "linear":
        return RestRefusal(200, ret_msg=f"params error: FakeBybit serves category=linear only, not {category}")
    symbol = query.get("symbol")
    if endpoint == "instruments-info":
        if symbol is not None and not is_instrument(symbol):
            return RestRefusal(200, ret_msg=MSG_SYMBOL_INVALID,
                               result={"category": "", "list": [], "nextPageCursor": ""})
    elif (symbol is None and endpoint != "tickers") or (symbol is not None and not has_market(symbol)):
        return RestRefusal(200, ret_msg=MSG_SYMBOL_INVALID)
    limit = 0
    if endpoint in _LIMITS:
        default, most = _LIMITS[endpoint]
        raw = query.get("limit")
        try:
            limit = default if raw is None else int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= most:
            return RestRefusal(200, ret_msg=f"params error: limit must be an integer from 1 to {most}, got {raw!r}")
    if endpoint != "instruments-info":
        return RestQuery(endpoint, symbol, limit)
    status = query.get("status")
    if status is not None and status not in STATUSES:
        return RestRefusal(200, ret_msg=f"params error: status must be one of {', '.join(STATUSES)}, got {status!r}")
    after = None
    cursor = query.get("cursor")
    if cursor:
        after = parse_cursor(cursor)
        if after is None:
            return RestRefusal(200, ret_msg=f"params error: cursor {cursor!r} is no nextPageCursor of this endpoint")
    return RestQuery(endpoint, symbol, limit, status, after)
