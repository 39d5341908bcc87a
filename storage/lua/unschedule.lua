-- Remove an attempt from the deadline set only if its due time is unchanged,
-- so a sweeper never drops an entry that a concurrent resume or extension rescheduled.
-- KEYS[1]  deadline sorted set
-- ARGV[1]  attempt id
-- ARGV[2]  the due time the caller saw
-- Returns  1 when removed, 0 otherwise.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
