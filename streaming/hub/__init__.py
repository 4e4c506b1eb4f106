"""Between upstream and clients: demand (who holds which channel, and what Binance is asked to stream),
publishing each update (ordering gate per kind, stores, fan-out), each channel's recorded history (positions,
recoveries, reads) and the trades the stream missed (backfill), REST-backed look-ups, and the streams' status
and its monitor.
"""
