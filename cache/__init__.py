"""Cache: the latest tick of every symbol, in process and in Redis, and the /price route that reads it."""
