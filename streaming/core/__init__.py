"""Pure core: symbols, models, wire frames, errors, pacing, limits, subscriptions, auth. No sockets, eventlet, redis
or flask.
"""
