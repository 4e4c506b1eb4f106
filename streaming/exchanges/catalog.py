"""SymbolCatalog: the set of symbols clients may subscribe to on one exchange (trading USDT perpetuals). No I/O."""
from __future__ import annotations

from collections.abc import Iterable

from streaming.core.errors import UnknownSymbolError

__all__ = ["SymbolCatalog"]


class SymbolCatalog:
    """Empty until the exchange's instrument list is first loaded; until then well-formed symbols are accepted
    provisionally."""

    def __init__(self, title: str = "Binance USD-M futures", exchange: str = "binance") -> None:
        self._symbols: frozenset[str] | None = None
        self._title = title
        self._exchange = exchange
        self.loaded_at: float | None = None

    @property
    def loaded(self) -> bool:
        return self._symbols is not None

    def replace(self, symbols: Iterable[str], at: float) -> tuple[frozenset[str], frozenset[str]]:
        """Install a new symbol set; returns ``(added, removed)`` relative to the previous one."""
        new = frozenset(symbols)
        old = self._symbols or frozenset()
        self._symbols = new
        self.loaded_at = at
        return new - old, old - new

    def check(self, symbol: str) -> None:
        """Raise UnknownSymbolError unless the symbol is tradable (or the catalog is not loaded yet)."""
        if self._symbols is not None and symbol not in self._symbols:
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r}: not a trading USDT perpetual on {self._title}; "
                f"GET /symbols?exchange={self._exchange} lists valid ones"
            )

    def is_known(self, symbol: str) -> bool:
        return self._symbols is not None and symbol in self._symbols

    def symbols(self) -> frozenset[str]:
        return self._symbols or frozenset()
