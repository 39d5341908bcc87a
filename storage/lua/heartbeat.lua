-- A process's heartbeat: its name scored by the Redis server's clock, so that
-- every reader measures ages against one clock; long-silent names are forgotten.
-- KEYS[1]  heartbeat sorted set (member = process name, score = ms since the epoch)
-- ARGV[1]  the process's name
-- ARGV[2]  forget names silent for this long, ms
-- Returns  the time written, ms since the epoch (server clock).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
