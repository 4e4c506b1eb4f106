"""Pure core: channels and kinds, models, symbols, subscriptions, histories and positions, history ranges, wire
frames, errors, pacing, limits, auth. No sockets, eventlet, redis or flask.
"""
