"""The OpenAPI 3.0.3 description of the HTTP API, built as a plain dict, and GET /openapi.json serving it.

The document describes what the routes answer today (streaming/gateway/routes.py, cache/routes.py, metrics/routes.py
and the JSON error handlers of app.py); tests/e2e/test_openapi.py checks the live service against it.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from streaming.core.channels import Kind
from streaming.core.symbols import SYMBOL_PATTERN
from streaming.runtime.version import VERSION

__all__ = ["OPENAPI_VERSION", "blueprint", "openapi_document"]

OPENAPI_VERSION = "3.0.3"

blueprint = Blueprint("openapi", __name__)

JSON = "application/json"
# Canonical symbols as the service emits them (anchored: JSON Schema patterns match anywhere).
SYMBOL = f"^{SYMBOL_PATTERN.pattern}$"
CHANNEL_KEY = f"^(bybit:)?({'|'.join(kind.value for kind in Kind)}):{SYMBOL_PATTERN.pattern}$"
MARKET = f"^(bybit:)?{SYMBOL_PATTERN.pattern}$"  # a symbol on its exchange: BTCUSDT (Binance), bybit:BTCUSDT
# streaming.core.models.iso_timestamp: UTC, milliseconds, 'Z'.
ISO_MILLIS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
# streaming.gateway.routes.format_uptime: "2h 15m 30s", with a leading "Nd " past a day.
UPTIME = r"^(\d+d )?\d+h \d+m \d+s$"
ERROR_CODE = r"^[A-Z][A-Z0-9_]*$"
EPOCH = r"^[A-Za-z0-9_-]{1,64}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _object(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema whose listed properties are all required unless ``required`` says otherwise.

    Additional properties stay allowed (the OpenAPI default): clients must ignore fields they do not know.
    """
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        **extra,
    }


def _error_with(codes: list[str], description: str) -> dict[str, Any]:
    """The error body with ``code`` limited to the given values."""
    return {
        "description": description,
        "allOf": [_ref("Error"), _object({"code": {"type": "string", "enum": codes}})],
    }


def _schemas() -> dict[str, Any]:
    integer = {"type": "integer", "minimum": 0}
    number = {"type": "number"}
    symbol = {"type": "string", "pattern": SYMBOL}
    symbols = {"type": "array", "items": symbol}
    markets = {"type": "array", "items": {"type": "string", "pattern": MARKET},
               "description": "symbols on their exchange: `BTCUSDT` on Binance, `bybit:BTCUSDT` on Bybit"}
    listing = {  # one exchange's symbols (GET /symbols)
        "exchange": _EXCHANGE,
        "default_symbols": symbols,
        "active_symbols": symbols,
        "supported": {"type": "string"},
        "symbols_loaded": {
            "type": "boolean",
            "description": "false until the exchange's instrument list has loaded (then `available_symbols` is "
                           "empty)",
        },
        "available_symbols": {**symbols, "description": "trading USDT perpetuals, sorted"},
    }
    source = {
        "type": "string", "enum": ["cache", "api"],
        "description": "`cache`: what the service holds from the stream; `api`: Binance REST just now",
    }
    return {
        "Error": _object(
            {
                "success": {"type": "boolean", "enum": [False]},
                "error": {"type": "string", "minLength": 1, "description": "what was wrong and what to do"},
                "code": {"type": "string", "pattern": ERROR_CODE, "description": "machine-readable error code"},
            },
            description="Every error answer: `{success: false, error, code}`, possibly with more fields.",
        ),
        "PriceUpdate": _object(
            {
                "symbol": symbol,
                "exchange": _EXCHANGE,
                "price": {**number, "description": "last price (Binance `c`)"},
                "volume": {**number, "description": "24 h base volume (`v`)"},
                "high": {**number, "description": "24 h high (`h`)"},
                "low": {**number, "description": "24 h low (`l`)"},
                "change": {**number, "description": "24 h price change (`p`)"},
                "changePercent": {**number, "description": "24 h price change percent (`P`)"},
                "open": {**number, "description": "24 h open price (`o`)"},
                "quoteVolume": {**number, "description": "24 h quote volume (`q`)"},
                "timestamp": {
                    "type": "string", "format": "date-time", "pattern": ISO_MILLIS,
                    "description": "`eventTime` in ISO 8601 UTC",
                },
                "eventTime": {**integer, "description": "Binance event time `E`, epoch milliseconds"},
            },
            description="The `price_update` payload of the Socket.IO API.",
        ),
        "Trade": _object(
            {
                "symbol": symbol,
                "exchange": _EXCHANGE,
                "id": {"oneOf": [integer, {"type": "string", "minLength": 1}],
                       "description": "Binance: the aggregate trade id `a`, consecutive per symbol; Bybit: its "
                       "trade id `i` (a string)"},
                "price": {**number, "description": "`p`"},
                "quantity": {**number, "description": "`q`"},
                "side": {"type": "string", "enum": ["buy", "sell"],
                         "description": "the taker's side: `sell` when the buyer was the maker (`m` true)"},
                "firstTradeId": {**integer, "nullable": True, "description": "`f`; null on Bybit"},
                "lastTradeId": {**integer, "nullable": True, "description": "`l`; null on Bybit"},
                "tradeTime": {**integer, "description": "`T`, epoch milliseconds"},
                "eventTime": {**integer, "description": "`E`, epoch milliseconds (the trade time for trades "
                              "fetched from Binance REST, which carry no event time)"},
                "timestamp": {"type": "string", "format": "date-time", "pattern": ISO_MILLIS,
                              "description": "`tradeTime` in ISO 8601 UTC"},
            },
            description="The `trade` payload of the Socket.IO API: one aggregated trade.",
        ),
        "BookTicker": _object(
            {
                "symbol": symbol,
                "exchange": _EXCHANGE,
                "bid": {**number, "description": "best bid price (`b`)"},
                "bidQty": {**number, "description": "`B`"},
                "ask": {**number, "description": "best ask price (`a`)"},
                "askQty": {**number, "description": "`A`"},
                "updateId": {"type": "integer", "minimum": 0, "nullable": True,
                             "description": "`u`; null for a book ticker from Binance REST that carries none"},
                "eventTime": {**integer, "description": "`E`, epoch milliseconds"},
                "transactionTime": {**integer, "description": "`T`, epoch milliseconds"},
                "timestamp": {"type": "string", "format": "date-time", "pattern": ISO_MILLIS,
                              "description": "`eventTime` in ISO 8601 UTC"},
            },
            description="The `book_ticker` payload of the Socket.IO API: the best bid and ask.",
        ),
        "Book": _object(
            {"success": {"type": "boolean", "enum": [True]}, "data": _ref("BookTicker"), "source": source},
        ),
        "Trades": _object(
            {
                "success": {"type": "boolean", "enum": [True]},
                "data": {"type": "array", "items": _ref("Trade"), "description": "oldest first, newest last"},
                "source": source,
            },
        ),
        "PricedTicker": _object(
            {
                "data": _ref("PriceUpdate"),
                "age": {"type": "number", "minimum": 0, "description": "seconds since `data.eventTime`"},
                "stale": {"type": "boolean", "description": "`age` is beyond PRICE_MAX_AGE"},
            },
        ),
        "Price": {
            "allOf": [
                _ref("PricedTicker"),
                _object(
                    {
                        "success": {"type": "boolean", "enum": [True]},
                        "source": {
                            "type": "string", "enum": ["cache", "api"],
                            "description": "`cache`: a fresh streamed or cached tick; `api`: Binance REST just now",
                        },
                    }
                ),
            ],
        },
        "PriceUnavailable": {
            "allOf": [
                _ref("Error"),
                _object(
                    {
                        "code": {"type": "string", "enum": ["UPSTREAM_UNAVAILABLE", "UPSTREAM_RATE_LIMITED"]},
                        "last_known": {
                            "allOf": [_ref("PricedTicker")],
                            "description": "the newest price the service has, older than PRICE_MAX_AGE "
                            "(so `stale` is true), when it has one",
                        },
                    },
                    required=["code"],
                ),
            ],
        },
        "Health": _object(
            {
                "service": {"type": "string"},
                "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
                "reasons": {
                    "type": "array", "items": {"type": "string"},
                    "description": "why the service is degraded or unhealthy; empty when healthy",
                },
                "version": {"type": "string", "minLength": 1},
                "build": _object(
                    {
                        "version": {"type": "string"},
                        "commit": {"type": "string", "description": "12 hex digits, or unknown"},
                        "python": {"type": "string"},
                        "async_mode": {"type": "string", "enum": ["eventlet", "gevent", "threading"]},
                    }
                ),
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "timestamp": {"type": "string", "format": "date-time", "pattern": ISO_MILLIS},
                "uptime": {"type": "string", "pattern": UPTIME},
                "dependencies": _object(
                    {
                        "cache": _object(
                            {
                                "status": {"type": "string", "enum": ["healthy", "degraded", "disabled"]},
                                "backend": {"type": "string", "enum": ["redis", "memory"]},
                                "message": {"type": "string"},
                            }
                        ),
                        "upstream": _object(
                            {
                                "status": {
                                    "type": "string", "enum": ["healthy", "unhealthy", "standby"],
                                    "description": "`standby`: an ingestor (ROLE=ingest) that does not lead holds "
                                    "no upstream connection, by design",
                                },
                                "message": {"type": "string"},
                            }
                        ),
                        "rest": _object(
                            {
                                "status": {
                                    "type": "string", "enum": ["healthy", "unhealthy", "disabled"],
                                    "description": "`disabled` while replaying a recording (UPSTREAM_REPLAY_FILE)",
                                },
                                "message": {"type": "string"},
                            }
                        ),
                    }
                ),
                "upstream": _object(
                    {
                        "connected": {"type": "boolean"},
                        "last_message_age": {"type": "number", "nullable": True},
                        "connections": {"type": "array", "items": _ref("UpstreamConnection")},
                        "source": {
                            "type": "string", "enum": ["binance", "replay", "cluster"],
                            "description": "`replay`: a recording plays in the place of Binance "
                            "(UPSTREAM_REPLAY_FILE); its connections are stand-ins, one per route. `cluster`: a "
                            "gateway (ROLE=gateway), which receives the leader's updates through Redis; "
                            "`connected` then means its pub/sub connection is up and an ingestor leads",
                        },
                        "leader": {"allOf": [_ref("ClusterLeader")], "nullable": True,
                                   "description": "a gateway only: the leader it receives from"},
                        "pubsub_connected": {"type": "boolean", "description": "a gateway only"},
                        "standby": {"type": "boolean", "description": "an ingestor that does not lead: true"},
                        "replay": _object(
                            {
                                "file": {"type": "string"},
                                "files": integer,
                                "speed": {"type": "number", "minimum": 0},
                                "loop": {"type": "boolean"},
                                "state": {"type": "string", "enum": ["reading", "playing", "finished"]},
                                "recorded_seconds": {"type": "number", "nullable": True},
                                "symbols": symbols,
                                "loops_completed": integer,
                                "frames_replayed": integer,
                            },
                            description="only while replaying",
                        ),
                        "recording": _object(
                            {
                                "file": {"type": "string"},
                                "written": integer,
                                "dropped": integer,
                                "queued": integer,
                            },
                            description="only with UPSTREAM_RECORD_FILE: the day's file and the frames written, "
                            "dropped (the writer fell behind) and waiting",
                        ),
                    },
                    required=["connected", "last_message_age", "connections", "source"],
                ),
                "streams": _object(
                    {
                        "not_live": {
                            "type": "object",
                            "additionalProperties": {"type": "string", "enum": ["reconnecting", "stale"]},
                            "description": "symbol -> state, for streamed symbols that are not live",
                        }
                    }
                ),
                "metrics": _object(
                    {
                        "active_streams": integer,
                        "total_subscriptions": integer,
                        "active_symbols": markets,
                        "connected_clients": integer,
                    }
                ),
                "cluster": {"allOf": [_ref("Cluster")], "description": "ROLE=ingest or gateway only (docs/SCALING.md)"},
            },
            required=["service", "status", "reasons", "version", "build", "port", "timestamp", "uptime",
                      "dependencies", "upstream", "streams", "metrics"],
        ),
        "ClusterLeader": _object({"node": {"type": "string"}, "term": {"type": "integer", "minimum": 1}}),
        "Cluster": _object(
            {
                "role": {"type": "string", "enum": ["ingest", "gateway"]},
                "node": {"type": "string", "description": "this node's NODE_ID"},
                "leader": {"allOf": [_ref("ClusterLeader")], "nullable": True,
                           "description": "the ingestor that leads and its term; null while none does"},
                "nodes": {
                    "type": "array",
                    "description": "every live node's last heartbeat (sent every second): role, port, pid, "
                    "connected_clients, total_subscriptions, channels; an ingestor's leader, term and publish_queue; "
                    "a gateway's pubsub_connected; `age`: seconds since it was sent",
                    "items": _object({"node": {"type": "string"}, "role": {"type": "string"},
                                      "age": {"type": "number", "minimum": 0}}),
                },
                "totals": _object({"gateways": integer, "connected_clients": integer, "total_subscriptions": integer},
                                  description="over the live gateways"),
                "error": {"type": "string", "nullable": True,
                          "description": "why this node cannot read the cluster's Redis now; null when it can"},
            }
        ),
        "Ready": _object(
            {
                "ready": {"type": "boolean"},
                "reasons": {"type": "array", "items": {"type": "string"}, "description": "why not ready"},
                "upstream_connected": {"type": "boolean"},
                "source": {"type": "string", "enum": ["binance", "replay", "cluster"]},
                "symbols_loaded": {"type": "boolean"},
                "version": {"type": "string"},
            }
        ),
        "UpstreamConnection": _object(
            {
                "index": integer,
                "state": {
                    "type": "string",
                    "enum": ["idle", "connecting", "live", "reconnecting", "closing", "stopped"],
                },
                "url": {"type": "string"},
                "streams": integer,
                "messages": integer,
                "reconnects": integer,
                "last_message_age": {"type": "number", "nullable": True},
            }
        ),
        "Stats": _object(
            {
                "success": {"type": "boolean", "enum": [True]},
                "data": _object(
                    {
                        "service": {"type": "string"},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "role": {"type": "string", "enum": ["all", "ingest", "gateway"],
                                 "description": "ROLE (docs/SCALING.md)"},
                        "cluster": {"allOf": [_ref("Cluster")], "description": "ROLE=ingest or gateway only"},
                        "active_streams": integer,
                        "active_symbols": markets,
                        "total_subscriptions": integer,
                        "active_channels": {
                            "type": "array", "items": {"type": "string", "pattern": CHANNEL_KEY},
                            "description": "`<kind>:<SYMBOL>` (`bybit:<kind>:<SYMBOL>` on Bybit) of every "
                            "stream the exchanges deliver now",
                        },
                        "subscriptions_by_symbol": {
                            "type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                            "description": "symbol -> subscriptions to its streams (a client holding its "
                            "ticker and trades counts twice)",
                        },
                        "subscriptions_by_channel": {
                            "type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                            "description": "`<kind>:<SYMBOL>` -> clients subscribed to it",
                        },
                        "connected_clients": integer,
                        "white_hat_mode": {"type": "boolean", "enum": [True]},
                        "uptime": {"type": "string", "pattern": UPTIME},
                    },
                    required=["service", "port", "role", "active_streams", "active_symbols", "total_subscriptions",
                              "active_channels", "subscriptions_by_symbol", "subscriptions_by_channel",
                              "connected_clients", "white_hat_mode", "uptime"],
                ),
            }
        ),
        "History": _object(
            {
                "success": {"type": "boolean", "enum": [True]},
                "data": _object(
                    {
                        "symbol": symbol,
                        "stream": {"type": "string", "enum": ["ticker", "trade", "book"]},
                        "epoch": {"type": "string", "pattern": EPOCH,
                                  "description": "the epoch of these offsets (it changes when the history starts "
                                  "afresh)"},
                        "items": {
                            "type": "array",
                            "description": "recorded updates, oldest first: the stream's event payloads "
                            "(`PriceUpdate`, `Trade` or `BookTicker`), each with its `offset`",
                            "items": {"type": "object", "required": ["symbol", "offset"], "properties": {
                                "symbol": symbol, "offset": {"type": "integer", "minimum": 1}}},
                        },
                        "next": {"type": "integer", "minimum": 1, "nullable": True,
                                 "description": "pass as `after` for the next page; null: no more in the range"},
                    }
                ),
            }
        ),
        "Symbols": _object(
            {
                "success": {"type": "boolean", "enum": [True]},
                "data": _object(
                    {
                        **listing,
                        "exchanges": {"type": "object", "additionalProperties": _object(listing),
                                      "description": "every enabled exchange's listing, by name"},
                    }
                ),
            }
        ),
        "OpenAPIDocument": _object(
            {
                "openapi": {"type": "string", "pattern": r"^3\.0\.\d+$"},
                "info": _object({"title": {"type": "string"}, "version": {"type": "string"}}),
                "paths": {"type": "object"},
            }
        ),
    }


RETRY_AFTER = {
    "description": "seconds to wait before asking again",
    "schema": {"type": "integer", "minimum": 1},
}


def _responses() -> dict[str, Any]:
    retry_after = RETRY_AFTER
    return {
        "NotFound": _json(_ref("Error"), "No such route (`code` NOT_FOUND), or, where stated, no such resource."),
        "MethodNotAllowed": _json(
            _ref("Error"), "The route exists but not for this method (`code` METHOD_NOT_ALLOWED)."
        ),
        "Unauthorized": _json(
            _error_with(["UNAUTHORIZED"], "missing, invalid or expired token"),
            "Only with PROTECT_OPS_ENDPOINTS=true and authentication on: no valid token was given "
            "(`Authorization: Bearer ...` or `?token=`).",
        ),
        "InternalError": _json(
            _error_with(["INTERNAL_ERROR"], "an unexpected failure, logged by the service"),
            "An unexpected failure in the route; it has been logged.",
        ),
        "RateLimited": _json(
            _error_with(["RATE_LIMITED"], "too many /price, /book, /trades and /history requests"),
            "Too many /price, /book, /trades and /history requests from this address (PRICE_REQUESTS_PER_SECOND, "
            "PRICE_REQUEST_BURST, shared by the four).",
            headers={"Retry-After": {**retry_after, "required": True}},
        ),
        "PriceUnavailable": _json(
            _ref("PriceUnavailable"),
            "The cache has no fresh price and Binance REST could not be asked (`UPSTREAM_UNAVAILABLE`: "
            "unreachable or failing) or must not be asked now (`UPSTREAM_RATE_LIMITED`: Binance said back off, "
            "or the request weight is near its limit; then with `Retry-After`). Carries `last_known` when the "
            "service has an older price.",
            headers={"Retry-After": {**retry_after, "required": False}},
        ),
    }


def _operation(operation_id: str, summary: str, tags: list[str], responses: dict[str, Any], **extra: Any) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": tags,
        **extra,
        "responses": {**responses, "500": _response("InternalError")},
    }


EXCHANGE_NAMES = ["binance", "bybit"]
_EXCHANGE = {"type": "string", "enum": EXCHANGE_NAMES,
             "description": "the exchange (`binance`, the default, or `bybit` where EXCHANGES enables it)"}


def _exchange_parameter() -> dict[str, Any]:
    return {
        "name": "exchange",
        "in": "query",
        "required": False,
        "description": "The exchange: `binance` (the default) or `bybit` (where EXCHANGES enables it); any "
        "other is answered 400 INVALID_REQUEST.",
        "schema": {"type": "string", "enum": EXCHANGE_NAMES, "default": "binance"},
    }


def _symbol_parameter() -> dict[str, Any]:
    return {
        "name": "symbol",
        "in": "path",
        "required": True,
        "description": "A symbol such as `BTCUSDT`, case-insensitive. Anything else than 2-32 letters, digits or "
        "`_` is answered 400, a well-formed symbol that is not a trading USDT perpetual 404.",
        "schema": {"type": "string", "minLength": 1},
        "example": "BTCUSDT",
    }


def _lookup_errors(what: str, bad_request: list[str] | None = None,
                   bad_request_description: str = "the symbol is malformed") -> dict[str, Any]:
    """The error answers every look-up route (/price, /book, /trades) shares."""
    return {
        "400": _json(
            _error_with(bad_request or ["INVALID_SYMBOL"], bad_request_description),
            "The symbol is not 2-32 letters, digits or `_` (after trimming and upper-casing), or a parameter is "
            "out of range.",
        ),
        "404": _json(
            _error_with(
                ["UNKNOWN_SYMBOL", "NOT_FOUND"],
                "UNKNOWN_SYMBOL: not a trading USDT perpetual (GET /symbols lists them), or Binance answered "
                "'Invalid symbol.'; NOT_FOUND: an empty symbol matches no route",
            ),
            "Unknown symbol.",
        ),
        "429": _response("RateLimited"),
        "503": _json(
            _error_with(["UPSTREAM_UNAVAILABLE", "UPSTREAM_RATE_LIMITED"], f"no fresh {what} can be had now"),
            f"The service holds no fresh {what} and Binance REST could not be asked (`UPSTREAM_UNAVAILABLE`) or "
            "must not be asked now (`UPSTREAM_RATE_LIMITED`, then with `Retry-After`).",
            headers={"Retry-After": {**RETRY_AFTER, "required": False}},
        ),
    }


def _paths() -> dict[str, Any]:
    ops_security = [{}, {"bearerToken": []}, {"queryToken": []}]
    return {
        "/": {
            "get": _operation(
                "getDashboard", "The live dashboard (an HTML page)", ["operations"],
                {
                    "200": {
                        "description": "The dashboard page; it loads its script, styles and socket.io-client from "
                        "/dashboard/ and streams over Socket.IO.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "401": {
                        "description": "Only with authentication on: no valid token was given (`?token=` or "
                        "`Authorization: Bearer ...`). The body is an HTML sign-in form.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": _response("NotFound"),
                },
                description="Served only with DASHBOARD_ENABLED=true (the default); otherwise the route does not "
                "exist and answers 404 `NOT_FOUND`.",
                security=ops_security,
            )
        },
        "/health": {
            "get": _operation(
                "getHealth", "Service health, its dependencies and upstream connections", ["operations"],
                {
                    "200": _json(_ref("Health"), "`status` is `healthy`, or `degraded` with `reasons` when something "
                                 "is wrong (Redis down, Binance not connected or silent, streams not live, REST "
                                 "paused, symbols not loaded) but prices can still be served."),
                    "503": _json(_ref("Health"), "`status` is `unhealthy`: no current price can be served (neither "
                                 "the Binance stream nor Binance REST is available), or the service is shutting "
                                 "down."),
                },
            )
        },
        "/ready": {
            "get": _operation(
                "getReady", "Readiness for load balancers", ["operations"],
                {
                    "200": _json(_ref("Ready"), "An upstream connection is live and the symbols are loaded."),
                    "503": _json(_ref("Ready"), "Not ready yet (starting), or shutting down; `reasons` says why."),
                },
            )
        },
        "/stats": {
            "get": _operation(
                "getStats", "Subscription and stream counters", ["operations"],
                {
                    "200": _json(_ref("Stats"), "Counters of this service instance."),
                    "401": _response("Unauthorized"),
                },
                security=ops_security,
            )
        },
        "/symbols": {
            "get": _operation(
                "getSymbols", "The symbols clients may subscribe to", ["market data"],
                {"200": _json(_ref("Symbols"), "Default, active and available symbols: the exchange asked for "
                              "(Binance by default) at the top, every enabled exchange's under `exchanges`.")},
                parameters=[_exchange_parameter()],
            )
        },
        "/price/{symbol}": {
            "get": _operation(
                "getPrice", "The latest price of a symbol: from the cache, else from Binance REST", ["market data"],
                {
                    "200": _json(
                        _ref("Price"),
                        "A price no older than PRICE_MAX_AGE: from the cache (`source: cache`) or just fetched "
                        "from Binance REST and cached (`source: api`).",
                    ),
                    **_lookup_errors("price"),
                    "503": _response("PriceUnavailable"),
                },
                parameters=[_symbol_parameter(), _exchange_parameter()],
            )
        },
        "/book/{symbol}": {
            "get": _operation(
                "getBook", "The best bid and ask of a symbol: from the stream, else from Binance REST",
                ["market data"],
                {
                    "200": _json(_ref("Book"), "A book ticker no older than PRICE_MAX_AGE: the latest from the "
                                 "stream (`source: cache`), or just fetched from Binance's "
                                 "/fapi/v1/ticker/bookTicker (`source: api`)."),
                    **_lookup_errors("book ticker"),
                },
                parameters=[_symbol_parameter(), _exchange_parameter()],
            )
        },
        "/trades/{symbol}": {
            "get": _operation(
                "getTrades", "The last trades of a symbol: from the stream, else from Binance REST",
                ["market data"],
                {
                    "200": _json(_ref("Trades"), "The last `limit` aggregated trades, newest last: those the "
                                 "service kept from the live trade stream when it holds that many without a gap "
                                 "(`source: cache`), else Binance's /fapi/v1/aggTrades (`source: api`)."),
                    **_lookup_errors("trades", ["INVALID_SYMBOL", "INVALID_REQUEST"],
                                     "INVALID_SYMBOL: the symbol is malformed; INVALID_REQUEST: `limit` is not a "
                                     "whole number from 1 to 1000"),
                },
                parameters=[_symbol_parameter(), _exchange_parameter(), {
                    "name": "limit", "in": "query", "required": False,
                    "description": "How many trades, 1-1000 (default 500, as Binance).",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 500},
                }],
            )
        },
        "/history/{symbol}": {
            "get": _operation(
                "getHistory", "A page of a stream's recorded updates", ["market data"],
                {
                    "200": _json(_ref("History"), "Recorded updates after `after` with an event time from `from` "
                                 "to `to`, oldest first, at most `limit`; page on with `after=next` until `next` "
                                 "is null."),
                    "400": _json(
                        _error_with(["INVALID_SYMBOL", "INVALID_REQUEST"],
                                    "INVALID_SYMBOL: the symbol is malformed; INVALID_REQUEST: a parameter is not "
                                    "of the documented form, or `from` is after `to`"),
                        "A malformed symbol or parameter.",
                    ),
                    "404": _json(
                        _error_with(["UNKNOWN_SYMBOL", "NOT_FOUND", "HISTORY_DISABLED"],
                                    "UNKNOWN_SYMBOL: not a trading USDT perpetual; NOT_FOUND: an empty symbol "
                                    "matches no route; HISTORY_DISABLED: HISTORY_ENABLED=false"),
                        "Unknown symbol, or no history on this server.",
                    ),
                    "409": _json(
                        {"allOf": [_error_with(["EPOCH_CHANGED"], "the history started afresh"),
                                   _object({"epoch": {"type": "string", "pattern": EPOCH}})]},
                        "`epoch` was given and is no longer the channel's: its offsets mean nothing now; the "
                        "answer carries the current `epoch`.",
                    ),
                    "429": _response("RateLimited"),
                },
                parameters=[
                    _symbol_parameter(),
                    _exchange_parameter(),
                    {"name": "stream", "in": "query", "required": False, "description": "Which stream (default "
                     "ticker).", "schema": {"type": "string", "enum": ["ticker", "trade", "book"],
                                            "default": "ticker"}},
                    {"name": "from", "in": "query", "required": False, "description": "Oldest event time, "
                     "inclusive: epoch milliseconds or ISO 8601 (UTC without an offset).",
                     "schema": {"type": "string"}},
                    {"name": "to", "in": "query", "required": False, "description": "Newest event time, "
                     "inclusive: epoch milliseconds or ISO 8601.", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "required": False, "description": "At most this many "
                     "items, 1-1000 (default 100).",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "after", "in": "query", "required": False, "description": "Only offsets above this "
                     "one (the previous page's `next`).", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "epoch", "in": "query", "required": False, "description": "The epoch being paged "
                     "through: 409 if the history started afresh since.",
                     "schema": {"type": "string", "pattern": EPOCH}},
                ],
            )
        },
        "/metrics": {
            "get": _operation(
                "getMetrics", "Prometheus metrics", ["operations"],
                {
                    "200": {
                        "description": "The Prometheus text exposition format (`text/plain; version=...`).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _response("Unauthorized"),
                    "404": _response("NotFound"),
                },
                description="Served only with PROMETHEUS_ENABLED=true (the default); otherwise the route does "
                "not exist and answers 404 `NOT_FOUND`.",
                security=ops_security,
            )
        },
        "/openapi.json": {
            "get": _operation(
                "getOpenAPI", "This document", ["operations"],
                {"200": _json(_ref("OpenAPIDocument"), "The OpenAPI 3.0 description of the HTTP API.")},
            )
        },
    }


def openapi_document(version: str = VERSION) -> dict[str, Any]:
    """The OpenAPI 3.0.3 description of the service's HTTP API; ``version`` is the API's (``info.version``)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "websocket-streaming HTTP API",
            "version": version,
            "description": (
                "Live Binance USD-M futures tickers, trades and book tickers are streamed over Socket.IO (see the "
                "README); these routes serve the latest prices, best bids and asks, and trades, and the service's "
                "state. Every error is JSON "
                "`{success: false, error, code}`: also a route that does not exist (404 `NOT_FOUND`) and a "
                "method a route does not accept (405 `METHOD_NOT_ALLOWED`). CORS: `Access-Control-Allow-Origin` "
                "follows CORS_ALLOWED_ORIGINS."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "market data", "description": "prices, book tickers, trades and symbols"},
            {"name": "operations", "description": "health, counters, metrics and this document"},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "securitySchemes": {
                "bearerToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "A token of AUTH_TOKENS or an HS256 JWT signed with JWT_SECRET; needed only "
                    "with PROTECT_OPS_ENDPOINTS=true",
                },
                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "the same token as `?token=`"},
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    return jsonify(openapi_document())
