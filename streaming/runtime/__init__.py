"""Running the process: serving under eventlet or gevent, admission at the TCP level, shutdown, GC policy, logging,
tasks, version.
"""
