-- Make a connection the owner of an attempt; the previous owner is told to close (4409).
-- KEYS[1]  attempt hash
-- ARGV[1]  the new owner's connection id
-- ARGV[2]  control channel
-- ARGV[3]  message to publish when another connection owned the attempt
-- Returns  false when the attempt does not exist, else the attempt's 'ver' as of the claim:
--          from then on only system changes (which publish 'changed') can move it.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local prev = redis.call('HGET', KEYS[1], 'owner') or ''
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
if prev ~= '' and prev ~= ARGV[1] then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return tonumber(redis.call('HGET', KEYS[1], 'ver'))
