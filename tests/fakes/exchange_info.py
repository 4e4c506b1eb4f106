"""The fake's `GET /fapi/v1/exchangeInfo` body: the recorded sample plus the trap symbols of facts §5.

Pure: reads the sample file once per call, no sockets, no clock (the caller stamps `serverTime`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
EXCHANGE_INFO_FILE = DATA_DIR / "futures_rest_exchangeInfo.cryptofeed-binance_futures.json"

# Symbols the service must list as tradable (facts §5: PERPETUAL + USDT + TRADING); checked at load time.
CORE_PERPETUALS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT")


@dataclass(frozen=True)
class SymbolSpec:
    """What the market simulator needs to know about one symbol."""

    symbol: str
    pair: str
    contract_type: str
    quote_asset: str
    status: str
    price_decimals: int
    qty_decimals: int
    tick_size: Decimal
    step_size: Decimal
    symbol_type: int = 1  # `st` on the wire: 1 = USD-M, 2 = COIN-M (facts §2)

    @property
    def is_usdt_perpetual(self) -> bool:
        return self.contract_type == "PERPETUAL" and self.quote_asset == "USDT" and self.status == "TRADING"


@dataclass(frozen=True)
class _Trap:
    symbol: str
    pair: str
    contract_type: str
    status: str
    base_asset: str
    quote_asset: str
    price_decimals: int
    qty_decimals: int
    tick_size: str
    step_size: str
    delivery_date: int = 4133404800000
    underlying_type: str = "COIN"


# Facts §5 traps: a quarterly with quote asset USDT, a TradFi perpetual, a pending listing, a USDC perpetual.
TRAPS = (
    _Trap("BTCUSDT_260327", "BTCUSDT", "CURRENT_QUARTER", "TRADING", "BTC", "USDT", 1, 3, "0.1", "0.001",
          delivery_date=1774598400000),
    _Trap("XAUUSDT", "XAUUSDT", "TRADIFI_PERPETUAL", "TRADING", "XAU", "USDT", 2, 3, "0.01", "0.001",
          underlying_type="COMMODITY"),
    _Trap("NEWCOINUSDT", "NEWCOINUSDT", "PERPETUAL", "PENDING_TRADING", "NEWCOIN", "USDT", 4, 0, "0.0001", "1"),
    _Trap("BTCUSDC", "BTCUSDC", "PERPETUAL", "TRADING", "BTC", "USDC", 1, 3, "0.1", "0.001"),
)


def load_exchange_info(path: Path = EXCHANGE_INFO_FILE) -> dict[str, Any]:
    """The sample body with every trap of `TRAPS` appended to `symbols[]` unless already present."""
    body = json.loads(path.read_text(encoding="utf-8"))
    symbols = body["symbols"]
    present = {entry["symbol"] for entry in symbols}
    template = next(entry for entry in symbols if entry["symbol"] == "BTCUSDT")
    for trap in TRAPS:
        if trap.symbol not in present:
            symbols.append(_trap_entry(template, trap))
    _check_core_perpetuals(body)
    return body


def with_listing(exchange_info: dict[str, Any], symbol: str) -> dict[str, Any]:
    """A copy of `exchange_info` in which `symbol` (e.g. "NEWLYUSDT") is a TRADING USDT perpetual: a new entry
    shaped like BTCUSDT's, or the existing one trading again."""
    if not (symbol.isalnum() and symbol.isupper() and symbol.endswith("USDT") and len(symbol) > 4):
        raise ValueError(f"a listed symbol is upper-case letters and digits ending in USDT, got {symbol!r}")
    body = copy.deepcopy(exchange_info)
    entry = next((e for e in body["symbols"] if e["symbol"] == symbol), None)
    if entry is None:
        entry = copy.deepcopy(next(e for e in body["symbols"] if e["symbol"] == "BTCUSDT"))
        entry.update(symbol=symbol, pair=symbol, baseAsset=symbol.removesuffix("USDT"))
        body["symbols"].append(entry)
    entry.update(contractType="PERPETUAL", quoteAsset="USDT", marginAsset="USDT", status="TRADING")
    return body


def with_status(exchange_info: dict[str, Any], symbol: str, status: str) -> dict[str, Any]:
    """A copy of `exchange_info` with `symbol`'s status set (e.g. "SETTLING": being delisted)."""
    body = copy.deepcopy(exchange_info)
    entry = next((e for e in body["symbols"] if e["symbol"] == symbol), None)
    if entry is None:
        raise ValueError(f"{symbol!r} is not in the fake's exchangeInfo")
    entry["status"] = status
    return body


def symbol_specs(exchange_info: dict[str, Any]) -> list[SymbolSpec]:
    """One spec per entry of `exchange_info["symbols"]`, in file order."""
    return [_spec(entry) for entry in exchange_info["symbols"]]


def _spec(entry: dict[str, Any]) -> SymbolSpec:
    filters = {f["filterType"]: f for f in entry["filters"]}
    return SymbolSpec(
        symbol=entry["symbol"],
        pair=entry["pair"],
        contract_type=entry["contractType"],
        quote_asset=entry["quoteAsset"],
        status=entry["status"],
        price_decimals=int(entry["pricePrecision"]),
        qty_decimals=int(entry["quantityPrecision"]),
        tick_size=Decimal(filters["PRICE_FILTER"]["tickSize"]),
        step_size=Decimal(filters["LOT_SIZE"]["stepSize"]),
    )


def _trap_entry(template: dict[str, Any], trap: _Trap) -> dict[str, Any]:
    entry = copy.deepcopy(template)
    entry.update(
        symbol=trap.symbol,
        pair=trap.pair,
        contractType=trap.contract_type,
        deliveryDate=trap.delivery_date,
        status=trap.status,
        baseAsset=trap.base_asset,
        quoteAsset=trap.quote_asset,
        marginAsset=trap.quote_asset,
        pricePrecision=trap.price_decimals,
        quantityPrecision=trap.qty_decimals,
        underlyingType=trap.underlying_type,
    )
    for item in entry["filters"]:
        if item["filterType"] == "PRICE_FILTER":
            item["tickSize"] = trap.tick_size
            item["minPrice"] = trap.tick_size
        elif item["filterType"] in ("LOT_SIZE", "MARKET_LOT_SIZE"):
            item["stepSize"] = trap.step_size
            item["minQty"] = trap.step_size
    return entry


def _check_core_perpetuals(body: dict[str, Any]) -> None:
    specs = {spec.symbol: spec for spec in symbol_specs(body)}
    for symbol in CORE_PERPETUALS:
        spec = specs.get(symbol)
        if spec is None or not spec.is_usdt_perpetual:
            raise ValueError(f"exchangeInfo sample must list {symbol} as a TRADING USDT PERPETUAL; got {spec!r}")
