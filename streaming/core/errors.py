"""The service's one exception tree. Messages say what was wrong and what to do about it."""
from __future__ import annotations

__all__ = [
    "InvalidRequestError",
    "StreamingError",
    "InvalidSymbolError",
    "UnknownSymbolError",
    "ProtocolError",
    "UpstreamUnavailableError",
    "RateLimitedError",
    "TooManySymbolsError",
]


class StreamingError(Exception):
    """Base of every error this service raises on purpose."""

    code = "INTERNAL_ERROR"


class InvalidSymbolError(StreamingError, ValueError):
    """A symbol is not of the form Binance uses (upper-case letters and digits)."""

    code = "INVALID_SYMBOL"


class UnknownSymbolError(StreamingError, LookupError):
    """A well-formed symbol that is not a trading USDT perpetual on Binance USD-M futures."""

    code = "UNKNOWN_SYMBOL"


class ProtocolError(StreamingError):
    """A message from Binance that does not follow the documented protocol."""

    code = "PROTOCOL_ERROR"


class UpstreamUnavailableError(StreamingError):
    """Binance could not be reached or answered with a failure."""

    code = "UPSTREAM_UNAVAILABLE"


class InvalidRequestError(StreamingError, ValueError):
    """A client request that is not of the documented form (e.g. ``{"symbols": [...]}``)."""

    code = "INVALID_REQUEST"


class RateLimitedError(UpstreamUnavailableError):
    """Binance asked us to back off (429/418) or our request weight is near its limit: no call was made."""

    code = "UPSTREAM_RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManySymbolsError(InvalidRequestError):
    """A request names more symbols than one request, or one client, may hold."""

    code = "TOO_MANY_SYMBOLS"
