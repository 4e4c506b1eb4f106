"""GET / (the dashboard page) and GET /dashboard/<file> (its script, styles and the vendored socket.io-client).

With authentication on (AUTH_TOKENS or JWT_SECRET), the page needs the clients' token, as ``?token=`` or
``Authorization: Bearer``; without one it answers 401 with a sign-in form. Its assets hold no data and are
public. Registered only when DASHBOARD_ENABLED.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, request, send_from_directory
from flask.typing import ResponseReturnValue
from markupsafe import escape

from streaming.core.auth import AuthError, presented_token
from streaming.service import StreamingService

__all__ = ["blueprint", "STATIC", "CONTENT_SECURITY_POLICY"]

STATIC = Path(__file__).resolve().parent / "static"
# Everything the page loads and connects to is the service itself: scripts, styles, /symbols, /health, /stats,
# /history and the Socket.IO endpoint ('self' covers ws:// and wss:// of the same host).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

blueprint = Blueprint("dashboard", __name__)


def _hardened(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the page's address may carry ?token=
    response.headers["Cache-Control"] = "no-cache"  # revalidated each time: a new release shows at once
    return response


@blueprint.get("/")
def page() -> ResponseReturnValue:
    service: StreamingService = current_app.extensions["streaming"]
    if service.auth.enabled:
        try:
            service.auth.check(presented_token(request.headers.get("Authorization", ""), request.args.get("token")))
        except AuthError as exc:
            service.count_rejection(exc.code)
            form = (STATIC / "signin.html").read_text().replace("<!--REASON-->", str(escape(str(exc))))
            response = Response(form, 401, mimetype="text/html")
            response.headers["WWW-Authenticate"] = 'Bearer realm="websocket-streaming"'
            return _hardened(response)
    return _hardened(send_from_directory(STATIC, "index.html", mimetype="text/html"))


@blueprint.get("/dashboard/<path:name>")
def asset(name: str) -> ResponseReturnValue:
    """A file of the page (404 for anything else: send_from_directory refuses paths outside STATIC)."""
    return _hardened(send_from_directory(STATIC, name))
