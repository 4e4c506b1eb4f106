"""GET /health, /stats and /symbols: what operators and clients can ask about the service."""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from cache.writer import CacheStatus
from streaming.core.channels import BINANCE, split_market
from streaming.core.errors import InvalidRequestError
from streaming.core.models import iso_timestamp
from streaming.exchanges.registry import exchange_named
from streaming.hub.recorder import HistoryStore
from streaming.runtime.version import VERSION, build_details
from streaming.service import StreamingService

__all__ = ["blueprint", "can_serve_prices", "format_uptime"]

blueprint = Blueprint("streaming", __name__)

SUPPORTED = "All Binance USDT perpetual futures"
# How /health and /ready describe a replay that is not playing, by its state.
_REPLAY_STATES = {"connecting": "not started yet: reading it", "stopped": "finished"}


def _service() -> StreamingService:
    return current_app.extensions["streaming"]


def format_uptime(seconds: float) -> str:
    """``2h 15m 30s`` (with a leading ``Nd`` past a day)."""
    total = int(max(0, seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h {minutes}m {secs}s"
    return f"{days}d {text}" if days else text


def _cluster_upstream(service: StreamingService, cluster: dict[str, Any]) -> dict[str, Any]:
    """A gateway's upstream: the cluster's leader, through Redis pub/sub."""
    assert service.feed is not None
    connected = service.feed.connected and cluster["leader"] is not None and not cluster["error"]
    return {"connected": connected, "last_message_age": None, "connections": [], "source": "cluster",
            "leader": cluster["leader"], "pubsub_connected": service.feed.connected}


def _leads(service: StreamingService) -> bool:
    return service.ingest is None or service.ingest.election.lease_valid()


def _connections_view(service: StreamingService, exchange: str) -> dict[str, Any]:
    """One exchange's upstream connections: whether one is live, the newest data's age, and each connection."""
    now = time.monotonic()
    connections = []
    newest: float | None = None
    for status in service.upstream_statuses():
        if status.exchange != exchange:
            continue
        age = None if status.last_message_at is None else round(now - status.last_message_at, 3)
        if age is not None and status.state == "live":
            newest = age if newest is None else min(newest, age)
        connections.append(
            {
                "index": status.index,
                "exchange": status.exchange,
                "state": status.state,
                "url": status.url,
                "streams": status.streams,
                "messages": status.messages,
                "reconnects": status.reconnects,
                "last_message_age": age,
            }
        )
    return {"connected": any(c["state"] == "live" for c in connections), "last_message_age": newest,
            "connections": connections}


def _upstream_view(service: StreamingService) -> dict[str, Any]:
    """The upstream as /health, /ready and /stats show it: Binance's connections at the top (the default
    exchange), every enabled exchange's under ``exchanges``."""
    cluster = service.cluster_view()
    if service.feed is not None and cluster is not None:
        return _cluster_upstream(service, cluster)
    view: dict[str, Any] = {**_connections_view(service, BINANCE),
                            "source": "replay" if service.upstream_replay else "binance"}
    if len(service.exchanges) > 1:
        view["exchanges"] = {name: _connections_view(service, name) for name in service.exchanges}
    if not _leads(service):
        view["standby"] = True
    if service.upstream_replay:
        view["replay"] = service.upstream_replay.describe()
    if service.upstream_recorder:
        view["recording"] = service.upstream_recorder.status()
    return view


def _upstream_message(service: StreamingService, connected: bool) -> str:
    """What the upstream is: Binance, or a recording played in its place (never passed off as Binance)."""
    replay = service.upstream_replay
    cluster = service.cluster_view()
    if service.feed is not None and cluster is not None:
        leader = cluster["leader"]
        if connected:
            return f"receiving from the cluster's leader {leader['node']} (term {leader['term']}) through Redis"
        if not service.feed.connected:
            return f"not receiving: Redis pub/sub unavailable ({service.feed.error})"
        return "not receiving: no ingestor leads the cluster" if leader is None else \
            f"not receiving: Redis unavailable ({cluster['error']})"
    if not _leads(service):
        return "standby: another ingestor leads and holds the Binance connections"
    if replay is None:
        return "connected to Binance" if connected else "not connected to Binance"
    speed = f"{replay.speed:g}x" if replay.speed else "full speed"
    if connected:
        return f"replaying the recording {replay.name} at {speed} (not Binance)"
    return f"replay of the recording {replay.name} {_REPLAY_STATES.get(replay.state, 'finished')} (not Binance)"


def _symbols_reason(service: StreamingService) -> str:
    if service.upstream_replay:
        return f"symbols: not loaded from the recording {service.upstream_replay.name} yet"
    return "symbols: exchangeInfo not loaded yet"


def _health_reasons(service: StreamingService, upstream: dict[str, Any], cache_state: str) -> list[str]:
    settings = service.settings
    reasons: list[str] = []
    if service.draining:
        reasons.append("shutting down: not accepting clients")
    if cache_state == CacheStatus.MEMORY:
        reasons.append("cache: Redis unavailable, serving from memory")
    if _history_view(service)["status"] == "degraded":
        reasons.append("history: Redis unavailable, recording in memory")
    cluster = service.cluster_view()
    if cluster is not None and cluster["error"]:
        reasons.append(f"cluster: Redis unavailable ({cluster['error']})")
    elif cluster is not None and cluster["leader"] is None:
        reasons.append("cluster: no ingestor leads (none is running, or the lock is changing hands)")
    if upstream.get("standby"):
        pass  # a standby holds no upstream connection, by design
    elif not upstream["connected"]:
        if any(channel.exchange == BINANCE for channel in service.wanted_channels()) or service.feed is not None:
            reasons.append(f"upstream: {_upstream_message(service, False)}")
    elif upstream["last_message_age"] is not None and upstream["last_message_age"] > settings.stale_timeout:
        reasons.append(f"upstream: no data for {upstream['last_message_age']:.0f}s")
    if not service.catalog.loaded:
        reasons.append(_symbols_reason(service))
    reasons += _other_exchange_reasons(service, upstream)
    down = service.monitor.down()
    if down:
        shown = ", ".join(f"{symbol} {state}" for symbol, state in list(down.items())[:10])
        reasons.append(f"streams: {len(down)} not live ({shown})")
    for name, rest in service.rests.items():
        prefix = "rest" if name == BINANCE else f"{name} rest"
        rest_wait = rest.gate.blocked_for()
        if rest_wait > 0:
            reasons.append(f"{prefix}: {rest.title} calls paused for {rest_wait:.0f}s ({rest.gate.reason})")
        elif rest.last_ok is False:
            reasons.append(f"{prefix}: the last {rest.title} call failed")
    return reasons


def _other_exchange_reasons(service: StreamingService, upstream: dict[str, Any]) -> list[str]:
    """/health's reasons for the exchanges other than Binance, each named: ``bybit upstream: ...``."""
    reasons = []
    for name, view in upstream.get("exchanges", {}).items():
        if name == BINANCE:
            continue
        title = service.exchanges[name].title
        wanted = any(channel.exchange == name for channel in service.wanted_channels())
        if wanted and not view["connected"]:
            reasons.append(f"{name} upstream: not connected to {title}")
        elif view["connected"] and view["last_message_age"] is not None and \
                view["last_message_age"] > service.settings.stale_timeout:
            reasons.append(f"{name} upstream: no data from {title} for {view['last_message_age']:.0f}s")
        if not service.catalogs[name].loaded:
            reasons.append(f"{name} symbols: the instrument list of {title} is not loaded yet")
    return reasons


def _history_view(service: StreamingService) -> dict[str, str]:
    """/health's history dependency: where channel histories are recorded now."""
    if service.cluster_bus is not None:
        cluster = service.cluster_view() or {}
        return {"status": "degraded" if cluster.get("error") else "healthy", "store": "redis",
                "message": f"history in Redis Streams at {service.cluster_bus.address}, written by the cluster's "
                           "leader"}
    if service.recorder is None:
        return {"status": "disabled", "store": "none", "message": "history off (HISTORY_ENABLED=false)"}
    store, message = service.recorder.status()
    degraded = store == HistoryStore.MEMORY and service.settings.redis_enabled
    return {"status": "degraded" if degraded else "healthy", "store": str(store), "message": message}


def _rest_view(service: StreamingService, exchange: str) -> dict[str, str]:
    rest = service.rests[exchange]
    if service.upstream_replay:
        return {"status": "disabled",
                "message": f"{service.exchanges[exchange].title} REST API not used while replaying a recording"}
    return {"status": "healthy" if rest.available() else "unhealthy",
            "message": f"{rest.title} available" if rest.available() else f"{rest.title} paused or failing"}


def _exchanges_view(service: StreamingService, upstream: dict[str, Any]) -> dict[str, Any]:
    """/health's ``exchanges``: each enabled exchange's upstream, REST and symbols, so that a fault of one is
    seen as that exchange's."""
    views = {}
    for name, exchange in service.exchanges.items():
        view = upstream.get("exchanges", {}).get(name, {"connected": False, "last_message_age": None})
        rest = _rest_view(service, name)
        connected = view["connected"]
        views[name] = {
            "title": exchange.title,
            "status": "healthy" if connected and rest["status"] != "unhealthy" else
                      "degraded" if connected or rest["status"] == "healthy" else "unhealthy",
            "upstream": {"connected": connected, "last_message_age": view["last_message_age"],
                         "connections": len(view.get("connections", []))},
            "rest": rest,
            "symbols_loaded": service.catalogs[name].loaded,
            "symbols": len(service.catalogs[name].symbols()),
        }
    return views


def can_serve_prices(service: StreamingService, upstream_connected: bool) -> bool:
    """Prices come from the stream or, failing that, from Binance REST; with neither (or while shutting down)
    the service cannot serve current prices at all."""
    if service.draining:
        return False
    return upstream_connected or service.rest.available()


@blueprint.get("/health")
def health() -> ResponseReturnValue:
    """200 with status healthy or degraded (with reasons); 503 with status unhealthy when no current price can
    be served (no upstream and no REST), or while shutting down."""
    service = _service()
    settings = service.settings
    cache_state, cache_message = service.cache.status()
    upstream = _upstream_view(service)
    reasons = _health_reasons(service, upstream, cache_state)
    cluster = service.cluster_view()
    serving = can_serve_prices(service, upstream["connected"])
    snapshot = service.snapshot()
    body = {
        "service": settings.service_name,
        "status": "unhealthy" if not serving else "degraded" if reasons else "healthy",
        "reasons": reasons,
        "version": VERSION,
        "build": build_details(settings.async_mode),
        "port": settings.port,
        "timestamp": iso_timestamp(int(time.time() * 1000)),
        "uptime": format_uptime(service.uptime_seconds()),
        "dependencies": {
            "cache": {
                "status": {CacheStatus.CONNECTED: "healthy", CacheStatus.MEMORY: "degraded"}.get(
                    cache_state, "disabled"
                ),
                "backend": "redis" if cache_state == CacheStatus.CONNECTED else "memory",
                "message": cache_message,
            },
            "history": _history_view(service),
            "upstream": {
                "status": "standby" if upstream.get("standby") else "healthy" if upstream["connected"]
                else "unhealthy",
                "message": _upstream_message(service, upstream["connected"]),
            },
            "rest": _rest_view(service, BINANCE),
        },
        **({"exchanges": _exchanges_view(service, upstream)} if len(service.exchanges) > 1 else {}),
        "upstream": upstream,
        **({"cluster": cluster} if cluster is not None else {}),
        "streams": {"not_live": service.monitor.down()},
        "metrics": {
            "active_streams": snapshot["active_streams"],
            "total_subscriptions": snapshot["total_subscriptions"],
            "active_symbols": snapshot["active_symbols"],
            "connected_clients": snapshot["connected_clients"],
        },
    }
    return jsonify(body), 200 if serving else 503


@blueprint.get("/ready")
def ready() -> ResponseReturnValue:
    """Readiness for load balancers: 200 once an upstream connection is live and the symbols are loaded;
    503 (with reasons) before that, and from the start of a shutdown."""
    service = _service()
    upstream = _upstream_view(service)
    reasons = []
    if service.draining:
        reasons.append("shutting down")
    if service.feed is not None:
        if not service.feed.connected:
            reasons.append(f"cluster: {_upstream_message(service, False)}")
    elif not upstream["connected"] and not upstream.get("standby"):
        reasons.append(f"upstream: {_upstream_message(service, False)}")
    if not service.catalog.loaded:
        reasons.append(_symbols_reason(service))
    body = {
        "ready": not reasons,
        "reasons": reasons,
        "upstream_connected": upstream["connected"],
        "source": upstream["source"],
        "symbols_loaded": service.catalog.loaded,
        "version": VERSION,
    }
    return jsonify(body), 503 if reasons else 200


@blueprint.get("/stats")
def stats() -> ResponseReturnValue:
    service = _service()
    snapshot = service.snapshot()
    cluster = service.cluster_view()
    data = {
        "service": service.settings.service_name,
        "port": service.settings.port,
        "role": service.role,
        **snapshot,
        **({"cluster": cluster} if cluster is not None else {}),
        "white_hat_mode": True,
        "uptime": format_uptime(service.uptime_seconds()),
    }
    return jsonify({"success": True, "data": data})


@blueprint.get("/symbols")
def symbols() -> ResponseReturnValue:
    """Binance's symbols at the top (as before there were other exchanges), and every enabled exchange's under
    ``exchanges``; ``?exchange=bybit`` puts that exchange's at the top instead."""
    service = _service()
    try:
        chosen = exchange_named(request.args.get("exchange", BINANCE), service.exchanges).name
    except InvalidRequestError as exc:
        service.count_rejection(exc.code)
        return jsonify({"success": False, "error": str(exc), "code": exc.code}), 400
    replay = service.upstream_replay
    active = service.snapshot()["active_symbols"]

    def listing(name: str) -> dict[str, Any]:
        catalog = service.catalogs[name]
        supported = (f"The symbols of the recording {replay.name} (a replay)" if replay
                     else SUPPORTED if name == BINANCE else f"All {service.exchanges[name].title} USDT perpetuals")
        return {
            "exchange": name,
            "default_symbols": list(service.settings.default_symbols) if name == BINANCE else [],
            "active_symbols": sorted(split_market(market)[1] for market in active
                                     if split_market(market)[0] == name),
            "supported": supported,
            "symbols_loaded": catalog.loaded,
            "available_symbols": sorted(catalog.symbols()),
        }

    data = {**listing(chosen), "exchanges": {name: listing(name) for name in service.exchanges}}
    return jsonify({"success": True, "data": data})
