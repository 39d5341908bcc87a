-- Mark a final attempt as persisted and let its keys expire.
-- KEYS[1]  attempt hash
-- KEYS[2]  answers hash
-- KEYS[3]  flags set
-- KEYS[4]  events list
-- KEYS[5]  actions list
-- ARGV[1]  time to live of the keys, ms
-- ARGV[2]  when the result was persisted (ms since the epoch)
-- Returns  1 when marked; 0 when the attempt is missing or not final (nothing written).
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'submitted' and state ~= 'expired' and state ~= 'terminated' then
  return 0
end
redis.call('HSET', KEYS[1], 'persisted', ARGV[2])
for k = 1, 5 do
  redis.call('PEXPIRE', KEYS[k], ARGV[1])
end
return 1
