"""websocket-streaming: Binance USD-M futures tickers to Socket.IO clients, with a cached REST fallback.

``create_app(settings)`` builds an app; ``python app.py`` loads ``.env`` and the environment, starts the
background tasks and serves on PORT (5021). Monkey patching happens first, and only when run as a script.
"""
from __future__ import annotations

if __name__ == "__main__":  # must run before anything imports socket, ssl or threading
    import os as _os

    from config import ConfigError as _ConfigError
    from config import Settings as _Settings
    from streaming.runtime.server import SERVED_MODES as _SERVED_MODES
    from streaming.runtime.server import listen as _listen
    from streaming.runtime.server import monkey_patch

    _listener = None
    try:
        _early = _Settings.load(_os.environ)
        monkey_patch(_early.async_mode)
        if _early.async_mode in _SERVED_MODES:  # bound before the imports: see streaming.runtime.server
            _listener = _listen(_early.host, _early.port)
    except (_ConfigError, OSError):
        pass  # main() reports it

import logging
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from flask_socketio import SocketIO
from werkzeug.exceptions import HTTPException

from cache.routes import blueprint as price_blueprint
from cache.routes import json_error
from config import ConfigError, Settings, read_environment, retired_keys
from metrics.labels import TaskName
from metrics.routes import blueprint as metrics_blueprint
from streaming.core.auth import AuthError, presented_token
from streaming.dashboard.routes import blueprint as dashboard_blueprint
from streaming.gateway.events import register_events
from streaming.gateway.openapi import blueprint as openapi_blueprint
from streaming.gateway.routes import blueprint as streaming_blueprint
from streaming.runtime.descriptors import DescriptorError, plan_descriptors, raise_open_files_limit
from streaming.runtime.gc_policy import GcPolicy
from streaming.runtime.logs import configure_logging
from streaming.runtime.server import HTTP_HEADROOM, SERVED_MODES, make_server, on_signals
from streaming.runtime.shutdown import GracefulShutdown
from streaming.runtime.version import VERSION
from streaming.runtime.wsgi import without_websocket_compression
from streaming.service import StreamingService

__all__ = ["create_app", "main", "origin_check"]

log = logging.getLogger("websocket_streaming")

OPS_ENDPOINTS = ("/stats", "/metrics")
# Seconds a starting process waits for Binance's upstream (live, symbols loaded) before it serves clients, who
# wait in the kernel's backlog meanwhile (StreamingService.wait_for_upstream); a failed first attempt ends it.
UPSTREAM_FIRST = 2.0


def origin_check(allowed: tuple[str, ...]) -> Callable[[str | None, dict[str, Any]], bool]:
    """Engine.IO's check of a listed set of origins: those, and the service's own origin (the host the request
    was sent to), which is what non-browser WebSocket clients send (python-socketio's websocket-client sends the
    URL it connects to) and what a page served from this host would send; that is no cross-origin request."""
    listed = frozenset(allowed)

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return False
        if origin.rstrip("/") in listed:
            return True
        host = environ.get("HTTP_HOST", "").lower()
        try:
            return bool(host) and urlsplit(origin).netloc.lower() == host
        except ValueError:  # not a URL at all (e.g. "http://[::1")
            return False

    return check


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app, its SocketIO server and its StreamingService (background tasks not started)."""
    settings = settings or Settings()
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False
    app.url_map.merge_slashes = False  # "/price//X" is a bad symbol (JSON 400), not an HTML redirect
    app.config["SETTINGS"] = settings
    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        cors_allowed_origins=origin_check(settings.cors_allowed_origins)
        if "*" not in settings.cors_allowed_origins
        else "*",
        max_http_buffer_size=settings.max_message_bytes,
        ping_interval=settings.client_ping_interval,
        ping_timeout=settings.client_ping_timeout,
        # Accept the namespace before the connect handler runs, so the 'connected' greeting it emits reaches
        # clients (python-socketio in particular) after the connection is established, never before.
        always_connect=True,
        # Handle each client's events in the order it sent them (subscribe then unsubscribe must not be
        # swapped); different clients are still served concurrently.
        async_handlers=False,
        logger=False,
        engineio_logger=False,
    )
    if not settings.ws_compression:
        app.wsgi_app = without_websocket_compression(app.wsgi_app)  # type: ignore[method-assign]
    service = StreamingService(settings, socketio)
    app.extensions["streaming"] = service
    register_events(socketio, service)
    app.register_blueprint(streaming_blueprint)
    app.register_blueprint(price_blueprint)
    app.register_blueprint(openapi_blueprint)
    if settings.prometheus_enabled:
        app.register_blueprint(metrics_blueprint)
    if settings.dashboard_enabled:
        app.register_blueprint(dashboard_blueprint)

    @app.before_request
    def protect_ops_endpoints() -> ResponseReturnValue | None:
        """With PROTECT_OPS_ENDPOINTS, /stats and /metrics need the same token as Socket.IO clients."""
        if not (settings.protect_ops_endpoints and service.auth.enabled and request.path in OPS_ENDPOINTS):
            return None
        try:
            service.auth.check(presented_token(request.headers.get("Authorization", ""), request.args.get("token")))
        except AuthError as exc:
            service.count_rejection(exc.code)
            return json_error(401, exc.code, str(exc))
        return None

    @app.after_request
    def allow_origins(response: Response) -> Response:
        """CORS for the HTTP routes, with the same origins as the Socket.IO endpoint."""
        origin = request.headers.get("Origin")
        allowed = settings.cors_allowed_origins
        if "*" in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin.rstrip("/") in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.vary.add("Origin")
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        code = (exc.name or "error").upper().replace(" ", "_")
        return json_error(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error in an HTTP route")
        service.metrics.task_errors.labels(TaskName.HTTP_ROUTE).inc()
        return json_error(500, "INTERNAL_ERROR", "internal error; it has been logged")

    return app


def main(listener: Any = None) -> int:
    """Serve until SIGTERM/SIGINT, then shut down gracefully; on ``listener`` if the port is bound already
    (streaming.runtime.server.listen). Exit status 2: bad configuration; 1: cannot serve (the port is in use,
    the open-files limit leaves no room for clients) or the shutdown overran SHUTDOWN_TIMEOUT."""
    try:
        environ = read_environment(os.environ)
        settings = Settings.from_env(environ)
        if settings.async_mode not in SERVED_MODES:
            raise ConfigError(f"ASYNC_MODE={settings.async_mode} is for in-process tests only; "
                              f"the server runs with {' or '.join(SERVED_MODES)}")
        configure_logging(
            settings.log_level, settings.log_format, settings.log_path(), settings.log_max_bytes,
            settings.log_backup_count, secrets=(*settings.auth_tokens, settings.jwt_secret),
        )
    except (ConfigError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    for notice in retired_keys(environ):
        log.warning("configuration: %s", notice)
    limit = raise_open_files_limit()
    try:
        plan = plan_descriptors(limit.soft, limit.before, settings.max_connections, settings.max_connections_per_ip,
                                settings.max_tcp_connections_per_ip, HTTP_HEADROOM)
    except DescriptorError as exc:
        log.error("cannot start: %s", exc)
        return 1
    (log.warning if plan.lowered else log.info)("%s", plan.message)
    settings = settings.with_overrides(max_connections=plan.max_connections,
                                       max_tcp_connections_per_ip=plan.tcp_per_address)
    app = create_app(settings)
    service: StreamingService = app.extensions["streaming"]
    socketio: SocketIO = app.extensions["socketio"]
    service.metrics.open_files_limit.set(limit.soft)
    try:
        server = make_server(app, settings.async_mode, settings.host, settings.port, settings.max_connections,
                             service.guard, listener)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s; is another process using the port? Set PORT to another one",
                  settings.host, settings.port, exc.strerror or exc)
        return 1
    shutdown = GracefulShutdown(service, socketio, server, settings.shutdown_timeout)
    on_signals(settings.async_mode, shutdown.request)
    gc_policy = GcPolicy(service.tasks, service.metrics, settings.gc_freeze_interval, settings.gc_full_interval)
    service.start()
    gc_policy.start()  # after start-up's allocations, which are frozen first
    service.wait_for_upstream(UPSTREAM_FIRST)
    server.start()
    log.info("%s %s (%s) listening on %s:%d", settings.service_name, VERSION, settings.async_mode,
             settings.host, settings.port)
    status = shutdown.wait()
    shutdown.end(status)
    return status


if __name__ == "__main__":
    sys.exit(main(_listener))
