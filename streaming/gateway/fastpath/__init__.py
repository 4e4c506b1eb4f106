"""Every hook into python-socketio / python-engineio internals: frame-once room writes, direct socket writes, timer
heartbeats, on-demand writers, gevent WebSockets, slow-consumer backlogs, transport closing.
"""
