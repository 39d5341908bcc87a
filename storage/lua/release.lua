-- Drop ownership of an attempt if this connection still holds it.
-- Safe to run twice: a repeat finds nobody holding the attempt and answers 1 again. Nobody holds it
-- only after its last owner released it, so the caller's absent.lua (guarded by claim numbers) is right then too.
-- KEYS[1]  attempt hash
-- ARGV[1]  the connection id
-- Returns  1 when released (or held by nobody), 0 when another connection owns it.
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'owner')
  return 1
end
if not owner or owner == '' then
  return 1
end
return 0
