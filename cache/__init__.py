"""Redis and the routes it backs: the latest tick of every symbol (in process and in Redis) and /price, /book and
/trades; the channels' histories as Redis Streams and /history.
"""
