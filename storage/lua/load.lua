-- Read one attempt consistently.
-- KEYS[1]  attempt hash
-- KEYS[2]  answers hash
-- KEYS[3]  flags set
-- Returns  false when the attempt does not exist, else
--          {attempt fields (flat HGETALL), answers (flat HGETALL), flags (SMEMBERS)}.
local a = redis.call('HGETALL', KEYS[1])
if #a == 0 then
  return false
end
return {a, redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}
