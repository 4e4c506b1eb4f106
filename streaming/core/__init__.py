"""Pure core: channels and kinds, models, symbols, subscriptions, wire frames, errors, pacing, limits, auth. No
sockets, eventlet, redis or flask.
"""
