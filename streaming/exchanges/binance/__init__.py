"""Binance USD-M futures: the protocol (pure), live-subscription control, REST and the symbol catalog."""
