-- An attempt's connection closed on this node (and no newer one took it over): mark it absent.
-- Nothing happens when a newer connection of the attempt (a higher claim number) announced itself meanwhile:
-- its claim may have come between this connection's release and this script.
-- KEYS[1]  the exam's presence sorted set
-- KEYS[2]  the exam's presence claims hash (attempt id -> claim number of the newest announced connection)
-- ARGV[1]  attempt id
-- ARGV[2]  the exam's live channel
-- ARGV[3]  message to publish there when the attempt was present (connected false)
-- ARGV[4]  the closed connection's claim number (claim.lua)
-- Returns  1 when it was present, else 0 (nothing published)
if (tonumber(redis.call('HGET', KEYS[2], ARGV[1])) or 0) > tonumber(ARGV[4]) then
  return 0
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
