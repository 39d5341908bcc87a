-- Drop ownership of an attempt if this connection still holds it.
-- KEYS[1]  attempt hash
-- ARGV[1]  the connection id
-- Returns  1 when released, 0 when another connection (or nobody) owned it.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'owner')
  return 1
end
return 0
