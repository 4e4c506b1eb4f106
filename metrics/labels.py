"""The bounded label values of the service's metrics, each set declared once.

ServiceMetrics exports every value of these sets as 0 from start-up (so a rate() or an alert has a series to
evaluate before the first event), and the code that counts names its values from here. A new value is one new
member; a new counter with a bounded label gets a set here and a row in ServiceMetrics.bounded_labels. Labels
with open-ended values (symbol) have no set. Pure: imports nothing but the standard library.
"""
from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ReconnectReason",
    "UpstreamEvent",
    "StreamType",
    "ControlMethod",
    "DeliveryPath",
    "StaleScope",
    "CacheOperation",
    "CacheResult",
    "HistoryOperation",
    "RecoveryResult",
    "RestEndpoint",
    "RestOutcome",
    "RejectedCode",
    "TaskName",
    "TcpRefusal",
    "AcceptError",
]


class ReconnectReason(StrEnum):
    """upstream_reconnects_total{reason}: the first word of why an upstream connection ended."""

    CLOSED = "closed"  # the peer closed (with or without a close frame)
    ERROR = "error"  # a socket error while reading
    CONNECT_FAILED = "connect_failed"  # the connection could not be opened
    STALE = "stale"  # no data for STALE_TIMEOUT
    DEAD_PEER = "dead_peer"  # no pong within PONG_TIMEOUT
    NO_REPLY = "no_reply"  # a SUBSCRIBE/UNSUBSCRIBE went unanswered


class UpstreamEvent(StrEnum):
    """upstream_events_total{event}: notable upstream events other than reconnects, requests and stale
    connections (those have counters of their own)."""

    CONNECTED = "connected"
    ROTATED = "rotated"
    HANDLER_ERROR = "handler_error"
    CONNECTION_BUDGET = "connection_budget"
    UNMATCHED_REPLY = "unmatched_reply"
    ERROR_FRAME = "error_frame"
    UNRECOGNISED = "unrecognised"


class ExchangeName(StrEnum):
    """upstream_messages_total{exchange} and upstream_connections{exchange}: the exchanges with an adapter."""

    BINANCE = "binance"
    BYBIT = "bybit"


class StreamType(StrEnum):
    """upstream_messages_total{stream_type}."""

    TICKER = "ticker"
    TRADE = "trade"
    BOOK = "book"
    TICKER_ARRAY = "ticker_array"
    OTHER = "other"


class ControlMethod(StrEnum):
    """upstream_control_requests_total{method}."""

    SUBSCRIBE = "SUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"


class DeliveryPath(StrEnum):
    """deliveries_total{path}."""

    DIRECT = "direct"
    QUEUED = "queued"


class StaleScope(StrEnum):
    """stale_detections_total{scope}."""

    CONNECTION = "connection"
    SYMBOL = "symbol"


class CacheOperation(StrEnum):
    """cache_errors_total{operation}: the Redis operation that failed."""

    GET = "get"
    WRITE = "write"
    PING = "ping"


class CacheResult(StrEnum):
    """cache_lookups_total{result}."""

    HIT = "hit"
    MISS = "miss"
    STALE = "stale"


class HistoryOperation(StrEnum):
    """history_errors_total{operation}: the Redis history operation that failed."""

    WRITE = "write"
    READ = "read"
    TRIM = "trim"
    PING = "ping"
    LOST = "lost"  # Redis no longer held a channel's history (flushed, evicted): it starts a new epoch
    GAP = "gap"  # trades were missed and could not be fetched: the channel's history starts a new epoch


class RecoveryResult(StrEnum):
    """recoveries_total{result}: what a subscribe with ``since`` got for each channel."""

    RECOVERED = "recovered"  # every missed update
    SNAPSHOT = "snapshot"  # not recoverable: the snapshot instead


class RestEndpoint(StrEnum):
    """rest_requests_total{endpoint}: the REST paths the service calls, each exchange's (their paths differ)."""

    EXCHANGE_INFO = "/fapi/v1/exchangeInfo"
    TICKER_24HR = "/fapi/v1/ticker/24hr"
    BOOK_TICKER = "/fapi/v1/ticker/bookTicker"
    AGG_TRADES = "/fapi/v1/aggTrades"
    BYBIT_INSTRUMENTS = "/v5/market/instruments-info"
    BYBIT_TICKERS = "/v5/market/tickers"
    BYBIT_ORDERBOOK = "/v5/market/orderbook"
    BYBIT_RECENT_TRADE = "/v5/market/recent-trade"

    @property
    def path(self) -> str:
        return self.value


class RestOutcome(StrEnum):
    """rest_requests_total{outcome}."""

    OK = "ok"
    HELD_BACK = "held_back"  # not sent: the request gate is closed
    UNREACHABLE = "unreachable"
    INVALID_SYMBOL = "invalid_symbol"
    RATE_LIMITED = "rate_limited"  # HTTP 429
    BANNED = "banned"  # HTTP 418
    FAILED = "failed"  # any other answer


class RejectedCode(StrEnum):
    """rejected_inputs_total{code}: the error codes clients are refused with."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_SYMBOL = "INVALID_SYMBOL"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    TOO_MANY_SYMBOLS = "TOO_MANY_SYMBOLS"
    RATE_LIMITED = "RATE_LIMITED"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    MALFORMED_PACKET = "MALFORMED_PACKET"
    UNAUTHORIZED = "UNAUTHORIZED"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    SERVER_SHUTTING_DOWN = "SERVER_SHUTTING_DOWN"
    TOO_MANY_REPLAYS = "TOO_MANY_REPLAYS"
    UNKNOWN_REPLAY = "UNKNOWN_REPLAY"


class TcpRefusal(StrEnum):
    """tcp_refusals_total{reason}: why a TCP connection was closed as soon as it was accepted."""

    PER_ADDRESS = "per_address"  # its address held MAX_TCP_CONNECTIONS_PER_IP already


class AcceptError(StrEnum):
    """accept_errors_total{error}: accept() failing for want of descriptors or kernel memory (retried later)."""

    EMFILE = "EMFILE"  # the process's open-files limit
    ENFILE = "ENFILE"  # the system's
    ENOBUFS = "ENOBUFS"
    ENOMEM = "ENOMEM"


class PublishResult(StrEnum):
    """cluster_published_total{result}: what became of each update the ingestor offered to Redis."""

    PUBLISHED = "published"  # appended to its history and published
    REPEAT = "repeat"  # not newer than the channel's newest published update (e.g. another leader sent it)
    FENCED = "fenced"  # the leader lock was not this node's: nothing written
    FAILED = "failed"  # the script failed (the stored history disagrees with its position)
    DROPPED = "dropped"  # never sent: the lease ran out, or Redis stayed unreachable


class FeedResult(StrEnum):
    """cluster_feed_updates_total{result}: what a gateway did with each update of a channel."""

    FORWARDED = "forwarded"  # the next update, sent to the channel's clients
    FILLED = "filled"  # missed on pub/sub and read from the history before the one that revealed the gap
    REPEAT = "repeat"  # already forwarded, dropped
    LOST = "lost"  # missed and no longer in the history: the channel's clients have a hole


class TaskName(StrEnum):
    """task_errors_total{task}: where an unexpected error was caught (a background task or a handler)."""

    SYMBOLS_CATALOG = "symbols catalog"
    UPSTREAM_POOL = "upstream_pool"
    UPSTREAM_RECORDER = "upstream recorder"
    UPSTREAM_REPLAY = "upstream replay"
    BACKLOG_GUARD = "backlog guard"
    CACHE_WRITER = "cache writer"
    HISTORY_WRITER = "history writer"
    REPLAY = "replay"
    GC_POLICY = "gc policy"
    LEADER_ELECTION = "leader election"
    CLUSTER_PUBLISHER = "cluster publisher"
    CLUSTER_DEMAND = "cluster demand"
    CLUSTER_HEARTBEAT = "cluster heartbeat"
    CLUSTER_FEED = "cluster feed"
    SOCKETIO_HANDLER = "socketio_handler"
    HTTP_ROUTE = "http_route"
