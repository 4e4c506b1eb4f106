"""The cluster's Lua scripts: each runs atomically in Redis, so no other client sees half of one.

ACQUIRE   take the leader lock if nobody holds it, under a new term.
RENEW     extend the lock, only while it is still ours.
RESIGN    release the lock, only while it is still ours.
PUBLISH   one update, fenced by the leader's lock: check the lock is ours, check the update is newer than the
          channel's newest, append it to the channel's history with the next offset (``XADD``) and ``PUBLISH``
          the ready packet with that offset. One script, so the history's order and the publish order never
          disagree, and a leader whose lock lapsed (paused, partitioned) writes and publishes nothing.
NOTICE    a message about a channel that is not one of its updates (``stream_status``), fenced the same way, on
          the channel's pub/sub channel: in order with its updates, and with no offset.
"""
from __future__ import annotations

__all__ = ["ACQUIRE", "NOTICE", "PUBLISH", "RENEW", "RESIGN", "FAILED", "FENCED", "REPEAT"]

# KEYS: leader, term. ARGV: node id, TTL ms. Returns the token "<node>:<term>", or nil when the lock is held.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local term = redis.call('INCR', KEYS[2])
local token = ARGV[1] .. ':' .. term
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
"""

# KEYS: leader. ARGV: token, TTL ms. Returns 1 (renewed) or 0 (the lock is not ours: another leads, or it lapsed).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: leader. ARGV: token. Returns 1 (released) or 0 (it was not ours).
RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

FENCED = -1  # PUBLISH: the lock is not the caller's; nothing was written
REPEAT = 0  # PUBLISH: not newer than the channel's newest update; nothing was written
FAILED = -2  # PUBLISH raised: the stored stream is not what its position says (not a script result)

# KEYS: leader, history stream, history meta, order hash.
# ARGV: token, channel key, epoch for a channel without a history, max entries, time ms, order value,
#       wire JSON (compact, without offset and epoch), event name, pub/sub channel, published µs, term.
# The history entry also keeps the term that wrote it (field ``l``), so which leader wrote what can be told.
# Returns the update's offset, FENCED or REPEAT.
PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local newest = redis.call('HGET', KEYS[4], ARGV[2])
if newest and tonumber(newest) >= tonumber(ARGV[6]) then return 0 end
local meta = redis.call('HGET', KEYS[3], ARGV[2])
local epoch, offset
if meta then
  local colon = string.find(meta, ':', 1, true)
  epoch = string.sub(meta, 1, colon - 1)
  offset = tonumber(string.sub(meta, colon + 1)) + 1
else
  epoch = ARGV[3]
  offset = 1
  redis.call('DEL', KEYS[2])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset .. '-0', 't', ARGV[5], 'd', ARGV[7], 'l', ARGV[11])
redis.call('HSET', KEYS[3], ARGV[2], epoch .. ':' .. offset)
redis.call('HSET', KEYS[4], ARGV[2], ARGV[6])
redis.call('PUBLISH', ARGV[9], offset .. ' ' .. epoch .. ' ' .. ARGV[10] .. ' 2["' .. ARGV[8] .. '",'
  .. string.sub(ARGV[7], 1, -2) .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}]')
return offset
"""

# KEYS: leader. ARGV: token, pub/sub channel, message. Returns 1, or FENCED.
NOTICE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
