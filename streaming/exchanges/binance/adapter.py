"""Binance USD-M futures behind the adapter boundary (``streaming.exchanges.adapter``). Pure."""
from __future__ import annotations

from streaming.core.channels import BINANCE
from streaming.exchanges.adapter import Exchange
from streaming.exchanges.binance.protocol import control_request, parse_frame, parse_message, stream_url
from streaming.exchanges.binance.recording import replay_fields
from streaming.exchanges.binance.streams import ROUTES, STREAMS, channel_of_stream, route_of, stream_of
from streaming.exchanges.messages import Message

__all__ = ["BINANCE_EXCHANGE"]

# Streams a connection names in its URL; the rest are added with paced SUBSCRIBE requests.
URL_STREAM_LIMIT = 100


class _Session:
    """Binance frames carry everything they mean: one stateless session serves every connection."""

    @staticmethod
    def decode(data: str | bytes) -> Message:
        return parse_message(data)

    @staticmethod
    def parse(frame: object) -> Message:
        return parse_frame(frame)


_SESSION = _Session()

BINANCE_EXCHANGE = Exchange(
    name=BINANCE,
    title="Binance USD-M futures",
    routes=ROUTES,
    kinds=frozenset(STREAMS),
    stream_of=stream_of,
    route_of=route_of,
    channel_of_stream=channel_of_stream,
    stream_url=stream_url,
    url_stream_limit=URL_STREAM_LIMIT,
    control_request=control_request,
    session=lambda: _SESSION,
    replay_fields=replay_fields,
    ping_frame=None,  # WebSocket ping frames; Binance's own pings are answered by websocket-client
    max_streams_per_connection=1024,  # "WebSocket Market Streams": 1024 streams per connection
    max_batch=50,
    trade_ids_consecutive=True,  # aggregate trade ids count every aggTrade: a gap is a missed one
)
