"""Metrics: every Prometheus metric of the service, defined once on the app's own registry."""
