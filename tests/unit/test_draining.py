"""A service that is shutting down refuses new Socket.IO connects and says so (before any limit)."""
from __future__ import annotations

from app import create_app
from config import Settings
from streaming.gateway.admission import SHUTTING_DOWN, TOO_MANY_CONNECTIONS
from streaming.service import StreamingService


def service(**changes: object) -> StreamingService:
    app = create_app(Settings(async_mode="threading", redis_enabled=False).with_overrides(**changes))
    return app.extensions["streaming"]


def test_connects_are_refused_once_shutting_down() -> None:
    svc = service()
    assert svc.connection_refusal("10.0.0.1") is None
    svc.begin_shutdown()
    assert svc.tell_clients("SIGTERM") == 0
    code, reason = svc.connection_refusal("10.0.0.1")
    assert code == SHUTTING_DOWN and "reconnect" in reason
    assert svc.metrics.registry.get_sample_value("websocket_streaming_shutting_down") == 1


def test_the_connection_limits_still_apply_otherwise() -> None:
    svc = service(max_connections_per_ip=1)
    svc.client_connected("sid-1", "10.0.0.1")
    code, reason = svc.connection_refusal("10.0.0.1")
    assert code == TOO_MANY_CONNECTIONS and "your address" in reason
    assert svc.connection_refusal("10.0.0.2") is None
