-- Heartbeat of the attempts whose connections one node holds, for one exam.
-- An attempt that had been reaped meanwhile (a long stall) is announced as connected again.
-- KEYS[1]  the exam's presence sorted set
-- ARGV[1]  now (ms): the heartbeat score
-- ARGV[2]  the exam's live channel
-- ARGV[3]  ... attempt ids
-- Returns  how many attempts were not present before
local back = 0
for k = 3, #ARGV do
  if redis.call('ZADD', KEYS[1], ARGV[1], ARGV[k]) == 1 then
    back = back + 1
    redis.call('PUBLISH', ARGV[2], cmsgpack.pack({a = ARGV[k], c = true}))
  end
end
return back
