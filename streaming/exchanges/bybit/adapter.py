"""Bybit v5 linear perpetuals behind the adapter boundary (``streaming.exchanges.adapter``). Pure."""
from __future__ import annotations

from streaming.core.channels import Kind
from streaming.exchanges.adapter import Exchange
from streaming.exchanges.bybit.protocol import BybitSession, control_request, ping_frame, stream_url
from streaming.exchanges.bybit.recording import replay_fields
from streaming.exchanges.bybit.topics import (
    BYBIT,
    MAX_BATCH,
    MAX_STREAMS_PER_CONNECTION,
    ROUTES,
    channel_of_stream,
    route_of,
    stream_of,
)

__all__ = ["BYBIT_EXCHANGE"]

BYBIT_EXCHANGE = Exchange(
    name=BYBIT,
    title="Bybit linear perpetuals",
    routes=ROUTES,
    kinds=frozenset(Kind),
    stream_of=stream_of,
    route_of=route_of,
    channel_of_stream=channel_of_stream,
    stream_url=stream_url,
    url_stream_limit=0,  # Bybit takes no topics in its URL: every one is subscribed by request
    control_request=control_request,
    session=BybitSession,  # one per connection: it holds the merged ticker and book state
    replay_fields=replay_fields,
    ping_frame=ping_frame,  # {"op": "ping"} every 20 s ("Connect"), answered by a Pong
    max_streams_per_connection=MAX_STREAMS_PER_CONNECTION,
    max_batch=MAX_BATCH,
    trade_ids_consecutive=False,  # derived from seq (see payloads): a gap is no missed trade
)
