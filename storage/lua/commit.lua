-- Apply one engine transition to an attempt: compare-and-set on its version.
-- When the transition ends the attempt, the final record goes to the outbox
-- stream in the same script, so a final attempt is never left unqueued.
-- KEYS[1]  attempt hash
-- KEYS[2]  answers hash
-- KEYS[3]  flags set
-- KEYS[4]  events list
-- KEYS[5]  outbox stream
-- KEYS[6]  actions list (proctor actions, oldest first)
-- ARGV[1]  owner connection id; '' for a system change (sweeper, proctor), which skips the owner check
-- ARGV[2]  expected version (the 'ver' field the transition was computed from)
-- ARGV[3]  control channel, or '' to publish nothing
-- ARGV[4]  message to publish on the control channel
-- ARGV[5]  attempt id to queue on the outbox, or '' when the attempt does not end
-- ARGV[6]  the final record (JSON) queued with it
-- ARGV[7]  the exam's live channel, or '' to publish nothing there
-- ARGV[8]  message to publish on the live channel
-- ARGV[9]  n, then n field/value pairs to set on KEYS[1]
-- then     n, then n question/value pairs to set in KEYS[2]
-- then     n, then n questions to delete from KEYS[2]
-- then     n, then n questions to add to KEYS[3]
-- then     n, then n questions to remove from KEYS[3]
-- then     n, then n event entries to push on KEYS[4] (kept to the newest 200)
-- then     n, then n action entries to append to KEYS[6] (kept to the newest 1000)
-- Returns  {1, new version} applied; {0, current version} version conflict (nothing written);
--          {-1, 0} another connection owns the attempt; {-2, 0} no such attempt.
local cur = redis.call('HMGET', KEYS[1], 'ver', 'owner')
if not cur[1] then
  return {-2, 0}
end
if ARGV[1] ~= '' and cur[2] ~= ARGV[1] then
  return {-1, 0}
end
local ver = tonumber(cur[1])
if ver ~= tonumber(ARGV[2]) then
  return {0, ver}
end

local i = 9
local function section()
  local n = tonumber(ARGV[i])
  local first = i + 1
  i = i + 1 + n
  return first, n
end

local first, n = section()
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, first, first + n - 1))
end
first, n = section()
if n > 0 then
  redis.call('HSET', KEYS[2], unpack(ARGV, first, first + n - 1))
end
first, n = section()
if n > 0 then
  redis.call('HDEL', KEYS[2], unpack(ARGV, first, first + n - 1))
end
first, n = section()
if n > 0 then
  redis.call('SADD', KEYS[3], unpack(ARGV, first, first + n - 1))
end
first, n = section()
if n > 0 then
  redis.call('SREM', KEYS[3], unpack(ARGV, first, first + n - 1))
end
first, n = section()
if n > 0 then
  redis.call('LPUSH', KEYS[4], unpack(ARGV, first, first + n - 1))
  redis.call('LTRIM', KEYS[4], 0, 199)
end
first, n = section()
if n > 0 then
  redis.call('RPUSH', KEYS[6], unpack(ARGV, first, first + n - 1))
  redis.call('LTRIM', KEYS[6], -1000, -1)
end

ver = ver + 1
redis.call('HSET', KEYS[1], 'ver', ver)
if ARGV[5] ~= '' then
  local events = redis.call('LRANGE', KEYS[4], 0, -1)
  local actions = redis.call('LRANGE', KEYS[6], 0, -1)
  redis.call('XADD', KEYS[5], '*', 'attempt', ARGV[5], 'record', ARGV[6],
    'events', '[' .. table.concat(events, ',') .. ']', 'actions', '[' .. table.concat(actions, ',') .. ']')
end
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], ARGV[8])
end
return {1, ver}
