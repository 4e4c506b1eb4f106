"""Streaming: Binance upstream connections, subscriptions and the Socket.IO fan-out."""
