-- cancel: SCHEDULED or READY -> CANCELLED; a RUNNING task gets a cancel request.
-- Finished tasks are left as they are. Per item.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> now; ARGV[2..] -> task ids
-- Returns: per id, a flag (1 known, -1 unknown) and the record after the call (the
-- id and the FIELDS of _admin.lua).

local out = {}
for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[i + 6]
  local f = redis.call('HMGET', key, 's', 'c', 'sub')
  local state = f[1]
  if not state then
    out[#out + 1] = -1; push_none(out)
  else
    if state == 'SCHEDULED' or state == 'READY' then
      unindex(key, id, state)
      redis.call('HSET', key, 's', 'CANCELLED', 'f', ARGV[1], 'u', ARGV[1])
      redis.call('HDEL', key, 'lo', 'lu')
      redis.call('ZADD', FINISHED, ARGV[1], id)
      count(f[3], state, 'CANCELLED', ARGV[1])
    elseif state == 'RUNNING' and not f[2] then
      redis.call('HSET', key, 'c', '1', 'u', ARGV[1])
    end
    out[#out + 1] = 1; push_record(out, key, id)
  end
end
return commit(out)
