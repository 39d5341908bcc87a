-- Move dead-lettered outbox entries back to the outbox (after the cause was fixed),
-- oldest first, without their dead-letter fields; the drain then persists them again.
-- KEYS[1]  dead-letter stream
-- KEYS[2]  outbox stream
-- ARGV[1]  at most this many entries
-- Returns  how many entries were moved.
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
for _, entry in ipairs(entries) do
  local fields = {}
  local kv = entry[2]
  for i = 1, #kv, 2 do
    if kv[i] ~= 'reason' and kv[i] ~= 'entry' then
      fields[#fields + 1] = kv[i]
      fields[#fields + 1] = kv[i + 1]
    end
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('XDEL', KEYS[1], entry[1])
end
return #entries
