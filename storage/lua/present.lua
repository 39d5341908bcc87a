-- A node holds an attempt's connection: list it in its exam's roster, mark it present, tell the proctors.
-- KEYS[1]  the exam's roster set
-- KEYS[2]  the exam's presence sorted set
-- ARGV[1]  attempt id
-- ARGV[2]  now (ms): the heartbeat score
-- ARGV[3]  the exam's live channel
-- ARGV[4]  message to publish there (the attempt's summary, connected)
-- Returns  1
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
