"""Each exchange's REST client, by exchange name: the I/O half of the registry (``registry.py`` is pure)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from metrics.collectors import ServiceMetrics
from streaming.core.channels import BINANCE
from streaming.exchanges.adapter import MarketRest
from streaming.exchanges.binance.rest import BinanceRest
from streaming.exchanges.bybit.rest import BybitRest
from streaming.exchanges.bybit.topics import BYBIT

__all__ = ["REST_CLIENTS"]

# (REST host, timeout, metrics) -> the exchange's client
REST_CLIENTS: Mapping[str, Callable[[str, float, ServiceMetrics], MarketRest]] = MappingProxyType({
    BINANCE: BinanceRest,
    BYBIT: BybitRest,
})
