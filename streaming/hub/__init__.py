"""Between upstream and clients: publishing each update (ordering, cache, fan-out), the streams' status and its
monitor.
"""
