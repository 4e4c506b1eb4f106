"""ServiceMetrics: the service's Prometheus metrics, on a registry of its own (one per app).

Names are ``websocket_streaming_<thing>_<unit>``, counters end in ``_total``; label values come only from
bounded sets (event kinds, reasons, outcomes; declared in metrics/labels.py), never from raw client input. Every
value of those sets is exported as 0 from the start.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from itertools import product

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metrics.labels import (
    AcceptError,
    CacheOperation,
    CacheResult,
    ControlMethod,
    DeliveryPath,
    ExchangeName,
    FeedResult,
    HistoryOperation,
    PublishResult,
    ReconnectReason,
    RecoveryResult,
    RejectedCode,
    RestEndpoint,
    RestOutcome,
    StaleScope,
    StreamType,
    TaskName,
    TcpRefusal,
    UpstreamEvent,
)

__all__ = ["ServiceMetrics", "NAMESPACE"]

NAMESPACE = "websocket_streaming"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PerSymbolGauge(Collector):
    """A gauge labelled by symbol, read at scrape time from a mapping the service computes.

    The service passes only symbols it streams, so the label values stay a bounded set."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name = name
        self._documentation = documentation
        self._source: Callable[[], Mapping[str, int]] = dict

    def bind(self, source: Callable[[], Mapping[str, int]]) -> None:
        self._source = source

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, self._documentation, labels=["symbol"])

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for symbol, value in sorted(self._source().items()):
            family.add_metric([symbol], value)
        yield family


def start_at_zero(counter: Counter, *label_sets: type[StrEnum]) -> None:
    """Create the child of every combination of the label values, so each is exported (as 0) before its first
    event, as Prometheus' instrumentation guidelines advise."""
    for values in product(*label_sets):
        counter.labels(*values)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ns = NAMESPACE
        r = self.registry
        self.connected_clients = Gauge(f"{ns}_connected_clients", "Socket.IO clients connected now.", registry=r)
        self.subscriptions = Gauge(
            f"{ns}_subscriptions", "Client subscriptions now (sum over clients of their symbols).", registry=r
        )
        self.symbol_subscriptions = PerSymbolGauge(
            f"{ns}_symbol_subscriptions", "Client subscriptions per streamed symbol."
        )
        r.register(self.symbol_subscriptions)
        self.subscribed_symbols = Gauge(
            f"{ns}_subscribed_symbols", "Symbols with at least one subscribed client.", registry=r
        )
        self.upstream_streams = Gauge(
            f"{ns}_upstream_streams", "Streams Binance is delivering on our connections now.", registry=r
        )
        self.upstream_connections = Gauge(
            f"{ns}_upstream_connections", "Upstream connections by exchange and state.", ["exchange", "state"],
            registry=r
        )
        self.upstream_messages = Counter(
            f"{ns}_upstream_messages_total", "Data frames received from the exchanges, by exchange and stream type.",
            ["exchange", "stream_type"], registry=r,
        )
        self.upstream_events = Counter(
            f"{ns}_upstream_events_total",
            "Notable upstream events (error frames, unrecognised frames, stale connections...).",
            ["event"],
            registry=r,
        )
        self.upstream_reconnects = Counter(
            f"{ns}_upstream_reconnects_total", "Upstream reconnections by reason.", ["reason"], registry=r
        )
        self.control_requests = Counter(
            f"{ns}_upstream_control_requests_total", "SUBSCRIBE/UNSUBSCRIBE requests sent.", ["method"], registry=r
        )
        self.updates_emitted = Counter(
            f"{ns}_updates_emitted_total", "price_update events emitted to symbol rooms.", registry=r
        )
        self.deliveries = Counter(
            f"{ns}_deliveries_total",
            "Room messages sent to clients, by path: direct (framed once for the room and written without "
            "queueing) or queued (python-engineio's per-client queue: a polling client, or one with a backlog).",
            ["path"],
            registry=r,
        )
        self.updates_dropped = Counter(
            f"{ns}_updates_dropped_total",
            "Ticks not emitted because an equal or newer one was already emitted for the symbol.",
            registry=r,
        )
        self.emit_latency = Histogram(
            f"{ns}_event_to_emit_seconds",
            "Time from Binance's event time (E) to our emit: network, clock skew and our own work.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.receive_latency = Histogram(
            f"{ns}_receive_to_emit_seconds",
            "Time from reading an upstream frame to emitting its ticks: our own work only.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.stale_detections = Counter(
            f"{ns}_stale_detections_total",
            "Times data stopped: a whole connection silent (scope=connection) or one symbol quiet (scope=symbol).",
            ["scope"],
            registry=r,
        )
        self.cache_writes = Counter(f"{ns}_cache_writes_total", "Ticks written to Redis.", registry=r)
        self.cache_errors = Counter(
            f"{ns}_cache_errors_total", "Redis operations that failed.", ["operation"], registry=r
        )
        self.cache_lookups = Counter(
            f"{ns}_cache_lookups_total", "Latest-price lookups by result.", ["result"], registry=r
        )
        self.history_writes = Counter(
            f"{ns}_history_writes_total", "Updates appended to their channel's history in Redis.", registry=r
        )
        self.history_errors = Counter(
            f"{ns}_history_errors_total", "History operations in Redis that failed, and histories Redis lost.",
            ["operation"], registry=r,
        )
        self.history_in_redis = Gauge(
            f"{ns}_history_in_redis",
            "1 while channel histories are recorded in Redis, 0 while in memory only (Redis off or down).",
            registry=r,
        )
        self.history_pending = Gauge(
            f"{ns}_history_pending", "Recorded updates waiting to be written to Redis.", registry=r
        )
        self.recoveries = Counter(
            f"{ns}_recoveries_total",
            "Channels a reconnecting client asked to recover (subscribe with since), by result.", ["result"],
            registry=r,
        )
        self.recovered_updates = Counter(
            f"{ns}_recovered_updates_total", "Missed updates sent to reconnecting clients.", registry=r
        )
        self.backfilled_trades = Counter(
            f"{ns}_backfilled_trades_total",
            "Aggregated trades missed by the stream (a restart, a reconnect) and fetched from Binance REST.",
            registry=r,
        )
        self.replays = Gauge(f"{ns}_replays", "History replays running now.", registry=r)
        self.rest_requests = Counter(
            f"{ns}_rest_requests_total", "Binance REST calls by endpoint and outcome.", ["endpoint", "outcome"],
            registry=r,
        )
        self.rest_used_weight = Gauge(
            f"{ns}_rest_used_weight", "Binance REST request weight used this minute (X-MBX-USED-WEIGHT-1M).",
            registry=r,
        )
        self.rejected_inputs = Counter(
            f"{ns}_rejected_inputs_total", "Client inputs rejected, by error code.", ["code"], registry=r
        )
        self.slow_client_conflations = Counter(
            f"{ns}_slow_client_conflations_total", "Times a slow client's backlog was conflated.", registry=r
        )
        self.slow_client_dropped_updates = Counter(
            f"{ns}_slow_client_dropped_updates_total",
            "Older price updates dropped from slow clients' backlogs (a newer one of the symbol was queued).",
            registry=r,
        )
        self.slow_client_disconnects = Counter(
            f"{ns}_slow_client_disconnects_total", "Clients disconnected for staying behind.", registry=r
        )
        self.background_tasks = Gauge(
            f"{ns}_background_tasks", "Background tasks running now (readers, pool, cache writer...).", registry=r
        )
        self.task_errors = Counter(
            f"{ns}_task_errors_total", "Unexpected errors caught in background tasks.", ["task"], registry=r
        )
        self.build_info = Info(f"{ns}_build", "Version, commit, Python and async mode of this process.", registry=r)
        self.shutting_down = Gauge(
            f"{ns}_shutting_down", "1 while the service is shutting down (draining clients), else 0.", registry=r
        )
        self.fast_path = Gauge(
            f"{ns}_fast_path",
            "1 when the fast path delivers (frame-once room writes, direct socket writes), 0 when messages go out "
            "through the libraries' own delivery (FAST_PATH=false, or untested library versions).",
            registry=r,
        )
        self.gc_pause = Histogram(
            f"{ns}_gc_pause_seconds",
            "How long each garbage collection stopped the process, by generation (2: full collections).",
            ["generation"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.tcp_connections = Gauge(
            f"{ns}_tcp_connections", "TCP connections open to the HTTP server now (clients and HTTP requests).",
            registry=r,
        )
        self.tcp_refusals = Counter(
            f"{ns}_tcp_refusals_total",
            "TCP connections closed at once, by reason: per_address (the address held MAX_TCP_CONNECTIONS_PER_IP).",
            ["reason"],
            registry=r,
        )
        self.header_timeouts = Counter(
            f"{ns}_http_header_timeouts_total",
            "HTTP connections closed for not sending complete request headers within HTTP_HEADER_TIMEOUT.",
            registry=r,
        )
        self.accept_errors = Counter(
            f"{ns}_accept_errors_total",
            "Failed accept() calls for want of descriptors (EMFILE: the process's open-files limit, ENFILE: the "
            "system's), by error; accepting pauses briefly after each.",
            ["error"],
            registry=r,
        )
        self.open_files_limit = Gauge(
            f"{ns}_open_files_limit", "The process's open-files limit (RLIMIT_NOFILE, soft) after start-up.",
            registry=r,
        )
        self.gc_frozen_objects = Gauge(
            f"{ns}_gc_frozen_objects",
            "Objects frozen out of automatic garbage collection (GC_FREEZE_INTERVAL); 0 with the policy off.",
            registry=r,
        )
        self.leader_changes = Counter(
            f"{ns}_cluster_leader_changes_total",
            "Changes of the cluster's leader (a new term) seen by this node; ROLE=all: always 0.", registry=r,
        )
        self.is_leader = Gauge(
            f"{ns}_cluster_leader", "1 while this node is the cluster's leader (publishes the exchange's updates).",
            registry=r,
        )
        self.published = Counter(
            f"{ns}_cluster_published_total", "Updates this ingestor offered to Redis, by result.", ["result"],
            registry=r,
        )
        self.feed_updates = Counter(
            f"{ns}_cluster_feed_updates_total", "Updates a gateway received from Redis, by what it did.",
            ["result"], registry=r,
        )
        self.publish_latency = Histogram(
            f"{ns}_cluster_publish_to_gateway_seconds",
            "Time from the leader taking an update from the exchange's stream to this gateway reading it from "
            "Redis, before its own fan-out (the Redis hop: the leader's queue, the script, pub/sub, and this "
            "gateway's backlog of unread messages).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.pubsub_lag = Gauge(
            f"{ns}_cluster_pubsub_lag_seconds",
            "How far behind the leader this gateway's pub/sub reading is: the hop's latency of the last message "
            "read.", registry=r,
        )
        # The counters whose labels have bounded sets (metrics/labels.py), with the set of each label in order:
        # every combination is exported as 0 from the start. A new bounded counter gets a row here.
        self.bounded_labels: tuple[tuple[Counter, tuple[type[StrEnum], ...]], ...] = (
            (self.upstream_messages, (ExchangeName, StreamType)),
            (self.upstream_events, (UpstreamEvent,)),
            (self.upstream_reconnects, (ReconnectReason,)),
            (self.control_requests, (ControlMethod,)),
            (self.deliveries, (DeliveryPath,)),
            (self.stale_detections, (StaleScope,)),
            (self.cache_errors, (CacheOperation,)),
            (self.cache_lookups, (CacheResult,)),
            (self.history_errors, (HistoryOperation,)),
            (self.recoveries, (RecoveryResult,)),
            (self.rest_requests, (RestEndpoint, RestOutcome)),
            (self.rejected_inputs, (RejectedCode,)),
            (self.task_errors, (TaskName,)),
            (self.tcp_refusals, (TcpRefusal,)),
            (self.accept_errors, (AcceptError,)),
            (self.published, (PublishResult,)),
            (self.feed_updates, (FeedResult,)),
        )
        for counter, label_sets in self.bounded_labels:
            start_at_zero(counter, *label_sets)
