-- Remove the attempts whose heartbeats stopped (their node died) and tell the proctors.
-- A heartbeat that lands after this script re-adds its attempt (beat.lua), so nothing fresh is lost.
-- KEYS[1]  the exam's presence sorted set
-- ARGV[1]  cutoff (ms): members whose last heartbeat is older are stale
-- ARGV[2]  the exam's live channel
-- Returns  the reaped attempt ids
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('PUBLISH', ARGV[2], cmsgpack.pack({a = id, c = false}))
end
return stale
