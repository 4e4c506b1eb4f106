"""GET /metrics: the Prometheus exposition of the app's own registry."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["blueprint"]

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions["streaming"].metrics.registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
