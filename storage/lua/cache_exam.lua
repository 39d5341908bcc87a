-- Cache one version of an exam definition (the results store is the authority).
-- KEYS[1]  exam hash
-- ARGV[1]  version number
-- ARGV[2]  canonical JSON of that version
-- Returns  the current version after the write (never lowered).
redis.call('HSET', KEYS[1], 'v:' .. ARGV[1], ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'current') or '0')
if tonumber(ARGV[1]) > cur then
  cur = tonumber(ARGV[1])
  redis.call('HSET', KEYS[1], 'current', cur)
end
return cur
