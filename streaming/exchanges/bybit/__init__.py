"""Bybit v5 linear perpetuals: topics, payloads, per-connection merge state and the protocol (all pure)."""
