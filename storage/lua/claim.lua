-- Make a connection the owner of an attempt, under the attempt's next claim number; the previous owner is told to close (4409).
-- Claim numbers (field 'claim') only grow: they are the one order of an attempt's connections, across nodes.
-- A connection is superseded exactly when a claim numbered above its own exists.
-- KEYS[1]  attempt hash
-- ARGV[1]  the new owner's connection id
-- ARGV[2]  control channel
-- ARGV[3]  message to publish when another connection owned the attempt: JSON text ending in '"s":',
--          completed here with the claim number and '}'
-- Returns  false when the attempt does not exist, else {the attempt's 'ver' as of the claim, the claim number}:
--          from then on only system changes (which publish 'changed') can move 'ver'.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local prev = redis.call('HGET', KEYS[1], 'owner') or ''
local claim = redis.call('HINCRBY', KEYS[1], 'claim', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
if prev ~= '' and prev ~= ARGV[1] then
  redis.call('PUBLISH', ARGV[2], ARGV[3] .. claim .. '}')
end
return {tonumber(redis.call('HGET', KEYS[1], 'ver')), claim}
