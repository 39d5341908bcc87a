-- An attempt's connection closed on this node (and no newer one took it over): mark it absent.
-- KEYS[1]  the exam's presence sorted set
-- ARGV[1]  attempt id
-- ARGV[2]  the exam's live channel
-- ARGV[3]  message to publish there when the attempt was present (connected false)
-- Returns  1 when it was present, else 0 (nothing published)
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
