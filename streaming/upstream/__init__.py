"""The exchange side: one connection shell (reader, pings, watchdog, the recording tap), the pool that places
streams on connections, the recorder of upstream frames, and the replay of a recording in their place.
"""
