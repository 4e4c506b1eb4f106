"""The exchanges the service can stream from, by name, and the lookup that refuses an unknown one. Pure."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from streaming.core.errors import InvalidRequestError
from streaming.core.symbols import shown_item
from streaming.exchanges.adapter import Exchange
from streaming.exchanges.binance.adapter import BINANCE_EXCHANGE
from streaming.exchanges.bybit.adapter import BYBIT_EXCHANGE

__all__ = ["EXCHANGES", "exchange_named"]

EXCHANGES: Mapping[str, Exchange] = MappingProxyType({
    exchange.name: exchange for exchange in (BINANCE_EXCHANGE, BYBIT_EXCHANGE)
})


def exchange_named(value: object, enabled: Mapping[str, Exchange] = EXCHANGES) -> Exchange:
    """The enabled exchange a request names; raises InvalidRequestError, naming the enabled ones, otherwise."""
    exchange = enabled.get(value) if isinstance(value, str) else None
    if exchange is None:
        names = ", ".join(f'"{name}"' for name in enabled)
        raise InvalidRequestError(f"unknown exchange {shown_item(value)!r}; use one of {names} (EXCHANGES)")
    return exchange
