-- Store an exam definition as a new version, unless it equals the current one.
-- KEYS[1]  exam hash
-- ARGV[1]  canonical JSON of the definition
-- Returns  {version, 1} when a new version was stored, {version, 0} when unchanged.
local cur = tonumber(redis.call('HGET', KEYS[1], 'current') or '0')
if cur > 0 and redis.call('HGET', KEYS[1], 'v:' .. cur) == ARGV[1] then
  return {cur, 0}
end
cur = cur + 1
redis.call('HSET', KEYS[1], 'v:' .. cur, ARGV[1], 'current', cur)
return {cur, 1}
