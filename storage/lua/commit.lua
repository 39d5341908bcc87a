-- Apply one engine transition to an attempt: compare-and-set on its version.
-- When the transition ends the attempt, the final record goes to the outbox
-- stream in the same script, so a final attempt is never left unqueued.
-- Safe to run twice: the client resends a command whose connection was lost, and the
-- first copy may have run. Each commit carries a token, stored with the version it
-- wrote; the same commit arriving again while its write is still the newest returns
-- what it returned the first time, writing nothing (else the version check refuses it).
-- KEYS[1]  attempt hash
-- KEYS[2]  answers hash
-- KEYS[3]  flags set
-- KEYS[4]  events list
-- KEYS[5]  outbox stream
-- KEYS[6]  actions list (proctor actions, oldest first)
-- ARGV[1]  one MessagePack array (one argument instead of dozens keeps the client's
--          per-argument encoding off the answer path; byte strings in it are
--          packed as raw strings, as cmsgpack has no bin type):
--   [1]  owner connection id; '' for a system change (sweeper, proctor), which skips the owner check
--   [2]  expected version (the 'ver' field the transition was computed from)
--   [3]  control channel, or '' to publish nothing
--   [4]  message to publish on the control channel
--   [5]  attempt id to queue on the outbox, or '' when the attempt does not end
--   [6]  the final record (JSON) queued with it
--   [7]  the exam's live channel, or '' to publish nothing there
--   [8]  message to publish on the live channel
--   [9]  field/value pairs to set on KEYS[1] (flat list)
--   [10] question/value pairs to set in KEYS[2] (flat list)
--   [11] questions to delete from KEYS[2]
--   [12] questions to add to KEYS[3]
--   [13] questions to remove from KEYS[3]
--   [14] event entries to push on KEYS[4] (kept to the newest 200)
--   [15] action entries to append to KEYS[6] (kept to the newest 1000)
--   [16] this commit's token (unique per commit; '' for none), stored in KEYS[1] field 'tok'
-- Returns  {1, new version} applied (or applied already, by this very commit); {0, current version} version conflict (nothing written);
--          {-1, 0} another connection owns the attempt; {-2, 0} no such attempt.
local a = cmsgpack.unpack(ARGV[1])
local cur = redis.call('HMGET', KEYS[1], 'ver', 'owner', 'tok')
if not cur[1] then
  return {-2, 0}
end
if a[16] and a[16] ~= '' and cur[3] == a[16] then
  return {1, tonumber(cur[1])}  -- this commit again (a resend): it is the newest write, its version is the current one
end
if a[1] ~= '' and cur[2] ~= a[1] then
  return {-1, 0}
end
local ver = tonumber(cur[1])
if ver ~= tonumber(a[2]) then
  return {0, ver}
end

if #a[9] > 0 then
  redis.call('HSET', KEYS[1], unpack(a[9]))
end
if #a[10] > 0 then
  redis.call('HSET', KEYS[2], unpack(a[10]))
end
if #a[11] > 0 then
  redis.call('HDEL', KEYS[2], unpack(a[11]))
end
if #a[12] > 0 then
  redis.call('SADD', KEYS[3], unpack(a[12]))
end
if #a[13] > 0 then
  redis.call('SREM', KEYS[3], unpack(a[13]))
end
if #a[14] > 0 then
  redis.call('LPUSH', KEYS[4], unpack(a[14]))
  redis.call('LTRIM', KEYS[4], 0, 199)
end
if #a[15] > 0 then
  redis.call('RPUSH', KEYS[6], unpack(a[15]))
  redis.call('LTRIM', KEYS[6], -1000, -1)
end

ver = ver + 1
if a[16] and a[16] ~= '' then
  redis.call('HSET', KEYS[1], 'ver', ver, 'tok', a[16])
else
  redis.call('HSET', KEYS[1], 'ver', ver)
end
if a[5] ~= '' then
  local events = redis.call('LRANGE', KEYS[4], 0, -1)
  local actions = redis.call('LRANGE', KEYS[6], 0, -1)
  redis.call('XADD', KEYS[5], '*', 'attempt', a[5], 'record', a[6],
    'events', '[' .. table.concat(events, ',') .. ']', 'actions', '[' .. table.concat(actions, ',') .. ']')
end
if a[3] ~= '' then
  redis.call('PUBLISH', a[3], a[4])
end
if a[7] ~= '' then
  redis.call('PUBLISH', a[7], a[8])
end
return {1, ver}
