-- A node holds an attempt's connection: list it in its exam's roster, mark it present, tell the proctors.
-- Nothing is marked or told when a newer connection of the attempt (a higher claim number) announced itself already.
-- KEYS[1]  the exam's roster set
-- KEYS[2]  the exam's presence sorted set
-- KEYS[3]  the exam's presence claims hash (attempt id -> claim number of the newest announced connection)
-- ARGV[1]  attempt id
-- ARGV[2]  now (ms): the heartbeat score
-- ARGV[3]  the exam's live channel
-- ARGV[4]  message to publish there (the attempt's summary, connected)
-- ARGV[5]  the connection's claim number (claim.lua)
-- Returns  1 when announced, 0 when a newer connection had been
redis.call('SADD', KEYS[1], ARGV[1])
local claim = tonumber(ARGV[5])
if (tonumber(redis.call('HGET', KEYS[3], ARGV[1])) or 0) > claim then
  return 0
end
redis.call('HSET', KEYS[3], ARGV[1], claim)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
