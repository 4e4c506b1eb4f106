"""The exchange side: one connection shell (reader, pings, watchdog) and the pool that places streams on connections."""
