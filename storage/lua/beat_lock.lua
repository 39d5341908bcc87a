-- Take or renew the scheduler lock (one beat per deployment).
-- KEYS[1]  lock key (value = the holder's name)
-- ARGV[1]  the caller's name
-- ARGV[2]  time to live, ms (renewed on every call while held)
-- Returns  {1, name} when the caller holds the lock now;
--          {0, holder, ms left} when another holds it (nothing written).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1]}
end
return {0, holder, redis.call('PTTL', KEYS[1])}
