-- Release the scheduler lock if the caller still holds it.
-- KEYS[1]  lock key
-- ARGV[1]  the caller's name
-- Returns  1 when released, 0 when another held it (nothing written).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
