"""Exchange adapters, one package per exchange; a second exchange copies binance/'s shape."""
