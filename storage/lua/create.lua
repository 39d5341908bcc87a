-- Create an attempt unless it exists.
-- KEYS[1]  attempt hash
-- ARGV     field, value, field, value, ... of the new attempt (must include ver)
-- Returns  1 when created, 0 when the attempt already existed (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
