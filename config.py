"""Service settings: one frozen dataclass, built from the environment by ``Settings.from_env``.

This is the only module that reads the environment; everything else receives a ``Settings``.
"""
from __future__ import annotations

import glob
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from streaming.core.symbols import InvalidSymbolError, normalise_symbol

__all__ = ["ConfigError", "MIN_JWT_SECRET_BYTES", "PROJECT_ROOT", "RETIRED_KEYS", "Settings", "read_environment",
           "retired_keys"]

PROJECT_ROOT = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key and the expected form."""


# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output (256 bits); a shorter secret
# can be brute-forced offline from any token it signed.
MIN_JWT_SECRET_BYTES = 32

# Keys no longer read, and what took their place. Set in the environment or .env they are ignored with a warning
# at start-up: an old .env never stops the service from starting.
RETIRED_KEYS = {
    "CLIENT_ABUSE_STRIKES": "a client is now disconnected after CLIENT_ABUSE_TIMEOUT seconds over the event "
                            "rate limit (0: never), not after a number of refusals",
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_WS_URL = re.compile(r"^wss?://[^/?#\s]+$")
_HTTP_URL = re.compile(r"^https?://[^/?#\s]+$")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service, with production defaults (the real Binance)."""

    service_name: str = "websocket-streaming"
    host: str = "0.0.0.0"
    port: int = 5021
    log_level: str = "INFO"
    # text (human-readable) or json (one JSON object per line), to stdout and to LOG_FILE.
    log_format: str = "text"
    # Relative paths are under the project directory; "off" logs to stdout only. Rotated at LOG_MAX_BYTES,
    # keeping LOG_BACKUP_COUNT old files.
    log_file: str = "logs/websocket-streaming.log"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 5
    # eventlet (the default) or gevent in production; threading only for in-process tests and tools.
    async_mode: str = "eventlet"
    # On SIGTERM/SIGINT: seconds the graceful shutdown may take before the process exits anyway
    # (keep PM2's kill_timeout above it).
    shutdown_timeout: float = 10.0
    # permessage-deflate on client WebSockets: off, since tickers are small (it costs CPU per delivery and
    # memory per connection; see docs/PERFORMANCE.md).
    ws_compression: bool = False
    # The fast path (streaming/gateway/fastpath): frame-once room writes straight into each client's socket, no
    # green thread parked per client. false: the libraries' own delivery, slower, the same bytes.
    fast_path: bool = True
    redis_enabled: bool = True
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    prometheus_enabled: bool = True
    # The live dashboard at / (streaming/dashboard): with authentication on, it needs a client token too.
    dashboard_enabled: bool = True
    default_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT")
    reconnect_delay: float = 5.0
    # Reconnect attempts that keep failing back off exponentially, with full jitter, up to this many seconds
    # (so Binance accepting again is noticed within it; see streaming.core.pacing.ReconnectPolicy).
    reconnect_max_delay: float = 10.0
    binance_ws_url: str = "wss://fstream.binance.com"
    binance_rest_url: str = "https://fapi.binance.com"
    # The exchanges clients may subscribe to (README, "Exchanges"): binance (always on: the default of every
    # request that names none) and bybit (linear perpetuals).
    exchanges: tuple[str, ...] = ("binance",)
    bybit_ws_url: str = "wss://stream.bybit.com"
    bybit_rest_url: str = "https://api.bybit.com"
    # Seconds a symbol keeps streaming after its last subscriber left (no flapping on client reconnect).
    unsubscribe_grace: float = 5.0
    # Redis key TTL for price:<SYMBOL>, and the age past which a cached tick is not served as current.
    cache_ttl: float = 60.0
    price_max_age: float = 10.0
    # How often exchangeInfo is reloaded; how soon a failed load is retried.
    symbols_refresh_interval: float = 3600.0
    symbols_retry_interval: float = 15.0
    # Reconnect a connection that has delivered no data for this long although it carries streams; a symbol
    # without a tick for this long is reported stale to its subscribers.
    stale_timeout: float = 30.0
    # Our own pings detect a dead peer: one every PING_INTERVAL, a pong due within PONG_TIMEOUT.
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    # Binance closes connections after 24 hours ("WebSocket Market Streams"); replace them before that.
    connection_max_age: float = 23 * 3600.0
    # Binance USD-M: at most 1024 streams per connection ("WebSocket Market Streams").
    max_streams_per_connection: int = 1024
    # Binance allows 10 incoming messages/s per connection; stay well under it.
    control_messages_per_second: float = 4.0
    http_timeout: float = 5.0
    # History (README, "History and recovery"): every update of every channel, with its offset and epoch, in
    # Redis Streams (in memory while Redis is off or down). Retention per stream kind, a count and an age (the
    # oldest are dropped when either is exceeded); the defaults keep 5 symbols' three kinds well under 500 MB of
    # Redis (docs/HISTORY.md has the arithmetic). false: no history, no positions on events, no recovery.
    history_enabled: bool = True
    history_max_items: dict[str, int] = field(
        default_factory=lambda: {"ticker": 20_000, "trade": 100_000, "book": 50_000})
    history_max_age: dict[str, float] = field(
        default_factory=lambda: {"ticker": 86_400.0, "trade": 86_400.0, "book": 86_400.0})
    # Updates kept per channel in memory when Redis is off or down (the kind's count above if lower).
    history_memory_max_items: int = 10_000
    # At most this many missed updates are sent to one reconnecting client's subscribe; past it the client gets
    # recovered: false and the snapshot. At most half of CLIENT_TRADE_BACKLOG_LIMIT is used, so that a recovery
    # never gets its client cut off as a slow consumer.
    recovery_max_updates: int = 1000
    # Seconds the streams of a client that disconnected (not one that unsubscribed) keep streaming, and being
    # recorded, after it was their last subscriber, so that it can come back and recover (at least
    # UNSUBSCRIBE_GRACE).
    recovery_grace: float = 30.0
    # History replays (`replay`) one client may run at once.
    replay_max_per_client: int = 3
    # Client-facing limits (see README, "Security and limits").
    cors_allowed_origins: tuple[str, ...] = ("*",)
    max_message_bytes: int = 262144
    max_connections: int = 20000
    max_connections_per_ip: int = 2000
    # Open TCP connections one address may hold (Socket.IO clients and HTTP requests); 0: MAX_CONNECTIONS_PER_IP
    # plus the HTTP headroom, but at most half of the open-files limit, so one address cannot take every descriptor.
    max_tcp_connections_per_ip: int = 0
    # Seconds a connection may take to send a request's line and headers (and stay idle between requests).
    http_header_timeout: float = 5.0
    max_symbols_per_request: int = 200
    max_symbols_per_client: int = 1000
    client_events_per_second: float = 10.0
    client_event_burst: int = 30
    # A client over the event rate limit for longer than this many seconds is disconnected (0: never).
    client_abuse_timeout: float = 10.0
    price_requests_per_second: float = 20.0
    price_request_burst: int = 40
    # A client whose outgoing backlog exceeds this many messages has it conflated (newest ticker and book ticker
    # per symbol); one still behind SLOW_CLIENT_TIMEOUT seconds after that (it read less than arrived) is
    # disconnected. Trades never conflate: a client with more than CLIENT_TRADE_BACKLOG_LIMIT messages left
    # after conflation, trades among them, is disconnected at once with an `error` SLOW_CONSUMER.
    client_backlog_limit: int = 200
    slow_client_timeout: float = 30.0
    client_trade_backlog_limit: int = 2000
    # Trades of one symbol that arrive within this many seconds go to each client in one socket write (each
    # still its own `trade` event): one write per client per window instead of one per trade. 0: each at once.
    trade_batch_window: float = 0.05
    # Engine.IO heartbeat with clients: a PING every CLIENT_PING_INTERVAL seconds, a client that has not
    # answered within CLIENT_PING_TIMEOUT is disconnected (the Socket.IO defaults; clients learn both on connect).
    client_ping_interval: int = 25  # whole seconds: Engine.IO announces it to clients in whole seconds
    client_ping_timeout: float = 20.0
    # Garbage collection (streaming/runtime/gc_policy.py): every GC_FREEZE_INTERVAL seconds what survived is frozen
    # out of
    # automatic collections; every GC_FULL_INTERVAL seconds one planned full collection. 0 turns either off.
    gc_freeze_interval: float = 1.0
    gc_full_interval: float = 3600.0
    # Optional authentication (off when both are empty): static tokens and/or an HS256 JWT secret.
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    jwt_secret: str = field(default="", repr=False)
    # JWTs: when set, the aud / iss claim is required and must match; seconds of clock difference with the
    # tokens' issuer tolerated on exp, nbf and iat.
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway: float = 10.0
    # With authentication on, also require a token for /stats and /metrics.
    protect_ops_endpoints: bool = False
    # Record every upstream text frame (of every enabled exchange) with its exchange, route and receive time: gzip
    # JSON Lines, one file per UTC day (the prefix
    # recordings/binance writes recordings/binance-YYYY-MM-DD.jsonl.gz; relative to the project directory).
    # "" (off): nothing is recorded.
    upstream_record_file: str = ""
    # Run off a recording (.jsonl.gz or .jsonl, or a glob of several, played in name order) instead of the
    # exchanges: no upstream WebSocket, no REST. SPEED 1: the recorded spacing, 10: ten times faster, 0: as fast as
    # possible; LOOP: start again at the end (times and ids move on, so the data keeps looking live).
    upstream_replay_file: str = ""
    upstream_replay_speed: float = 1.0
    upstream_replay_loop: bool = True
    # Scale-out (docs/SCALING.md): all (one process: the exchange's streams, the history and the clients),
    # ingest (holds the exchange's connections; one leads, the others stand by) or gateway (holds clients; any
    # number). Every node of a cluster shares one Redis (REDIS_HOST, REDIS_PORT, REDIS_DB).
    role: str = "all"
    # This node's name in the cluster (heartbeats, demand, the leader lock); default <hostname>-<PORT>.
    node_id: str = ""
    # The leader lock's TTL, and how often the leader renews it: a standby takes over within about LEADER_TTL
    # of the leader's death.
    leader_ttl: float = 5.0
    leader_renew_interval: float = 1.0
    # A node's heartbeat, and a gateway's demand, lapse this long after its last refresh (every second).
    cluster_node_ttl: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise ConfigError naming the first bad key."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.upper()
            raw = environ.get(key)
            if raw is None or raw.strip() == "":
                continue
            parser = _PARSERS[f.name]
            try:
                values[f.name] = parser(raw.strip())
            except (ValueError, InvalidSymbolError) as exc:
                raise ConfigError(f"{key}={raw!r} is invalid: {exc}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def load(cls, environ: Mapping[str, str], dotenv_path: str | None = ".env") -> Settings:
        """Settings from ``.env`` (if present) under the given environment: real variables win."""
        return cls.from_env(read_environment(environ, dotenv_path))

    def validate(self) -> None:
        """Check cross-field rules; raise ConfigError naming the key."""
        if self.price_max_age > self.cache_ttl:
            raise ConfigError(
                f"PRICE_MAX_AGE={self.price_max_age} exceeds CACHE_TTL={self.cache_ttl}: "
                "a tick cannot be served longer than it is kept; raise CACHE_TTL or lower PRICE_MAX_AGE"
            )
        auth_keys = [key for key, on in (("AUTH_TOKENS", self.auth_tokens), ("JWT_SECRET", self.jwt_secret)) if on]
        if auth_keys and "*" in self.cors_allowed_origins:
            raise ConfigError(
                f"CORS_ALLOWED_ORIGINS=* cannot be used with authentication on ({' and '.join(auth_keys)} set): "
                "with *, a page on any site may connect from its visitors' browsers with their credentials and "
                "read the answers; list the origins of the pages that may connect, e.g. "
                "CORS_ALLOWED_ORIGINS=https://dash.example.com (clients that are not browsers are not affected)"
            )
        if self.upstream_record_file and self.upstream_replay_file:
            raise ConfigError(
                "UPSTREAM_RECORD_FILE cannot be used with UPSTREAM_REPLAY_FILE: a replay has no upstream frames to "
                "record; unset one of them"
            )
        if self.upstream_replay_file and not self.replay_files():
            raise ConfigError(
                f"UPSTREAM_REPLAY_FILE={self.upstream_replay_file!r} matches no file (relative paths are under the "
                "project directory); give a recording such as docs/demo/binance-sample.jsonl.gz, or a glob such as "
                "'recordings/binance-*.jsonl.gz'"
            )
        if self.role != "all":
            self._validate_cluster()
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ConfigError(
                f"JWT_SECRET is {len(self.jwt_secret.encode())} bytes long; HS256 needs at least "
                f"{MIN_JWT_SECRET_BYTES} (RFC 7518 section 3.2: a shorter secret can be guessed offline from any "
                "token it signed); generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )

    def _validate_cluster(self) -> None:
        role = f"ROLE={self.role}"
        if not self.redis_enabled:
            raise ConfigError(f"{role} needs Redis: the nodes of a cluster share it; set REDIS_ENABLED=true and "
                              "point REDIS_HOST/REDIS_PORT/REDIS_DB at the cluster's Redis")
        if not self.history_enabled:
            raise ConfigError(f"{role} needs HISTORY_ENABLED=true: a cluster numbers and publishes every update "
                              "through the histories in Redis")
        if self.upstream_replay_file:
            raise ConfigError(f"UPSTREAM_REPLAY_FILE cannot be used with {role}: replay a recording with ROLE=all")
        if self.role == "gateway" and self.upstream_record_file:
            raise ConfigError("UPSTREAM_RECORD_FILE cannot be used with ROLE=gateway, which holds no upstream "
                              "connection; set it on the ingestors")
        if self.leader_renew_interval * 2 > self.leader_ttl:
            raise ConfigError(f"LEADER_RENEW_INTERVAL={self.leader_renew_interval:g} must be at most half of "
                              f"LEADER_TTL={self.leader_ttl:g}, or one slow renewal loses the lock")

    def node_name(self) -> str:
        """NODE_ID, else ``<hostname>-<PORT>`` (unique per machine: one process per port)."""
        return self.node_id or f"{socket.gethostname()}-{self.port}"

    def log_path(self) -> Path | None:
        """LOG_FILE as an absolute path (relative ones are under the project directory); None when off."""
        if not self.log_file:
            return None
        path = Path(self.log_file).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    def record_prefix(self) -> Path | None:
        """UPSTREAM_RECORD_FILE as an absolute path prefix (relative ones are under the project directory)."""
        return _project_path(self.upstream_record_file) if self.upstream_record_file else None

    def replay_files(self) -> list[Path]:
        """The recordings UPSTREAM_REPLAY_FILE names (a path or a glob; relative ones under the project directory),
        in name order (the date in a recording's name makes that the recorded order)."""
        if not self.upstream_replay_file:
            return []
        pattern = _project_path(self.upstream_replay_file)
        return sorted(path for path in map(Path, glob.glob(str(pattern))) if path.is_file())

    def ws_url_of(self, exchange: str) -> str:
        """The WebSocket host of an exchange (BINANCE_WS_URL, BYBIT_WS_URL); its adapter appends the route."""
        return str(getattr(self, f"{exchange}_ws_url"))

    def rest_url_of(self, exchange: str) -> str:
        """The REST host of an exchange (BINANCE_REST_URL, BYBIT_REST_URL)."""
        return str(getattr(self, f"{exchange}_rest_url"))

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and tools)."""
        settings = replace(self, **changes)
        settings.validate()
        return settings


def read_environment(environ: Mapping[str, str], dotenv_path: str | None = ".env") -> dict[str, str]:
    """``.env`` (if present) under the given environment: real variables win."""
    merged: dict[str, str] = {}
    if dotenv_path:
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(environ)
    return merged


def retired_keys(environ: Mapping[str, str]) -> list[str]:
    """A warning for each retired key set in ``environ``, saying what replaced it."""
    return [f"{key} is no longer used and is ignored: {why}; remove it from .env and the environment"
            for key, why in RETIRED_KEYS.items() if environ.get(key, "").strip()]


def _project_path(raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _number(cast: Callable[[str], float], low: float, high: float, form: str) -> Callable[[str], Any]:
    expected = f"expected {form} from {low:g} to {high:g}"

    def parse(raw: str) -> Any:
        try:
            value = cast(raw)
        except ValueError:
            raise ValueError(expected) from None
        if not low <= value <= high:  # also refuses nan
            raise ValueError(expected)
        return value

    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    return _number(int, low, high, "a whole number")


def _seconds(low: float, high: float) -> Callable[[str], float]:
    return _number(float, low, high, "a number of seconds")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}")
    return level


def _log_file(raw: str) -> str:
    """A path, or "" (stdout only) for off/none/-."""
    if raw.lower() in ("off", "none", "-"):
        return ""
    if "\0" in raw:
        raise ValueError("expected a file path, or off")
    return raw


def _recording(raw: str) -> str:
    """A path (or glob), or "" for off/none/-."""
    if raw.lower() in ("off", "none", "-"):
        return ""
    if "\0" in raw:
        raise ValueError("expected a file path, or off")
    return raw


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _non_empty(raw: str) -> str:
    return raw


def _url(pattern: re.Pattern[str], form: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.rstrip("/")
        if not pattern.match(value):
            raise ValueError(f"expected {form}")
        return value

    return parse


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    for origin in origins:
        if origin != "*" and not re.match(r"^https?://[^/?#\s]+$", origin):
            raise ValueError("expected * or a comma-separated list of origins such as https://app.example.com")
    if not origins:
        raise ValueError("expected * or a comma-separated list of origins")
    return origins


_KINDS = ("ticker", "trade", "book")


def _per_kind(value: Callable[[str], Any], defaults: Mapping[str, Any], form: str) -> Callable[[str], dict[str, Any]]:
    """``kind:value`` pairs, comma-separated (e.g. ``trade:100000,book:50000``); kinds left out keep their
    default."""
    def parse(raw: str) -> dict[str, Any]:
        values = dict(defaults)
        for item in raw.split(","):
            kind, sep, text = item.strip().partition(":")
            if not sep or kind not in _KINDS:
                raise ValueError(f"expected kind:{form} pairs separated by commas, kinds {', '.join(_KINDS)}, "
                                 f"e.g. trade:{form}; got {item.strip()!r}")
            values[kind] = value(text.strip())
        return values

    return parse


def _node_id(raw: str) -> str:
    if not re.match(r"^[A-Za-z0-9._-]{1,100}$", raw):
        raise ValueError("expected up to 100 letters, digits, '.', '_' or '-', e.g. gateway-1")
    return raw


EXCHANGE_NAMES = ("binance", "bybit")  # the adapters of streaming/exchanges/registry.py (a test keeps them equal)


def _exchanges(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    unknown = [name for name in names if name not in EXCHANGE_NAMES]
    if unknown or "binance" not in names:
        raise ValueError(f"expected a comma-separated list of {', '.join(EXCHANGE_NAMES)} that includes binance "
                         f"(the default exchange of every request), e.g. binance,bybit; got {raw!r}")
    return ("binance", *(name for name in names if name != "binance"))


def _symbols(raw: str) -> tuple[str, ...]:
    symbols: list[str] = []
    for item in raw.split(","):
        if item.strip() == "":
            continue
        symbol = normalise_symbol(item)
        if symbol not in symbols:
            symbols.append(symbol)
    return tuple(symbols)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "service_name": _non_empty,
    "host": _non_empty,
    "port": _int_range(1, 65535),
    "log_level": _log_level,
    "log_format": _choice("text", "json"),
    "log_file": _log_file,
    "log_max_bytes": _int_range(1024, 10**12),
    "log_backup_count": _int_range(0, 1000),
    "async_mode": _choice("eventlet", "gevent", "threading"),
    "shutdown_timeout": _seconds(1, 600),
    "ws_compression": _bool,
    "fast_path": _bool,
    "redis_enabled": _bool,
    "redis_host": _non_empty,
    "redis_port": _int_range(1, 65535),
    "redis_db": _int_range(0, 15),
    "prometheus_enabled": _bool,
    "dashboard_enabled": _bool,
    "default_symbols": _symbols,
    "reconnect_delay": _seconds(0.05, 3600),
    "reconnect_max_delay": _seconds(0.05, 3600),
    "binance_ws_url": _url(_WS_URL, "a ws:// or wss:// host without a path, e.g. wss://fstream.binance.com"),
    "binance_rest_url": _url(_HTTP_URL, "an http:// or https:// host without a path, e.g. https://fapi.binance.com"),
    "exchanges": _exchanges,
    "bybit_ws_url": _url(_WS_URL, "a ws:// or wss:// host without a path, e.g. wss://stream.bybit.com"),
    "bybit_rest_url": _url(_HTTP_URL, "an http:// or https:// host without a path, e.g. https://api.bybit.com"),
    "unsubscribe_grace": _seconds(0, 3600),
    "cache_ttl": _seconds(1, 86400),
    "price_max_age": _seconds(0.1, 86400),
    "symbols_refresh_interval": _seconds(1, 86400),
    "symbols_retry_interval": _seconds(0.1, 3600),
    "stale_timeout": _seconds(1, 3600),
    "ping_interval": _seconds(1, 600),
    "pong_timeout": _seconds(1, 600),
    "connection_max_age": _seconds(1, 86000),
    "max_streams_per_connection": _int_range(1, 1024),
    "control_messages_per_second": _number(float, 0.1, 9, "a number of messages per second"),
    "http_timeout": _seconds(0.1, 120),
    "history_enabled": _bool,
    "history_max_items": _per_kind(_int_range(1, 100_000_000), Settings().history_max_items, "count"),
    "history_max_age": _per_kind(_seconds(1, 365 * 86400), Settings().history_max_age, "seconds"),
    "history_memory_max_items": _int_range(1, 10_000_000),
    "recovery_max_updates": _int_range(0, 1_000_000),
    "recovery_grace": _seconds(0, 3600),
    "replay_max_per_client": _int_range(1, 100),
    "cors_allowed_origins": lambda raw: _origins(raw),
    "max_message_bytes": _int_range(1024, 10_000_000),
    "max_connections": _int_range(1, 1_000_000),
    "max_connections_per_ip": _int_range(1, 1_000_000),
    "max_tcp_connections_per_ip": _int_range(0, 1_000_000),
    "http_header_timeout": _seconds(0.5, 3600),
    "max_symbols_per_request": _int_range(1, 10_000),
    "max_symbols_per_client": _int_range(1, 10_000),
    "client_events_per_second": _number(float, 0.1, 10_000, "a number of events per second"),
    "client_event_burst": _int_range(1, 100_000),
    "client_abuse_timeout": _number(float, 0, 3600, "a number of seconds (0: never)"),
    "price_requests_per_second": _number(float, 0.1, 10_000, "a number of requests per second"),
    "price_request_burst": _int_range(1, 100_000),
    "client_backlog_limit": _int_range(10, 1_000_000),
    "client_trade_backlog_limit": _int_range(10, 1_000_000),
    "trade_batch_window": _number(float, 0, 1, "a number of seconds from 0 to 1 (0: each trade at once)"),
    "slow_client_timeout": _seconds(0.5, 3600),
    "client_ping_interval": _int_range(1, 3600),
    "client_ping_timeout": _seconds(1, 3600),
    "gc_freeze_interval": _number(float, 0, 86400, "a number of seconds (0: Python's default collection)"),
    "gc_full_interval": _number(float, 0, 604800, "a number of seconds (0: never)"),
    "auth_tokens": lambda raw: tuple(token.strip() for token in raw.split(",") if token.strip()),
    "jwt_secret": _non_empty,
    "jwt_audience": _non_empty,
    "jwt_issuer": _non_empty,
    "jwt_leeway": _seconds(0, 300),
    "protect_ops_endpoints": _bool,
    "upstream_record_file": _recording,
    "upstream_replay_file": _recording,
    "upstream_replay_speed": _number(float, 0, 1000, "a speed factor (1: as recorded, 10: ten times faster, "
                                     "0: as fast as possible)"),
    "upstream_replay_loop": _bool,
    "role": _choice("all", "ingest", "gateway"),
    "node_id": lambda raw: _node_id(raw),
    "leader_ttl": _seconds(1, 60),
    "leader_renew_interval": _seconds(0.1, 30),
    "cluster_node_ttl": _seconds(1, 600),
}
