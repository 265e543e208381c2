-- requeue: give DEAD tasks a new life: SCHEDULED at run_at with attempt 0; the error
-- history is kept. Other states are returned unchanged. Per item.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each request
-- ARGV[1] -> now; ARGV[2+3i..] -> id, run_at, new payload JSON or '' to keep it
-- Returns: per request, a flag (1 known, -1 unknown) and the record after it (the id
-- and the FIELDS of _admin.lua).

local out = {}
for i = 0, (#ARGV - 1) / 3 - 1 do
  local a = 1 + 3 * i
  local id, run_at, payload, key = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], KEYS[8 + i]
  local f = redis.call('HMGET', key, 's', 'sub')
  if not f[1] then
    out[#out + 1] = -1; push_none(out)
  else
    if f[1] == 'DEAD' then
      redis.call('ZREM', DEAD, id)
      redis.call('HDEL', key, 'f', 'r', 'lo', 'lu', 'c')
      redis.call('HSET', key, 's', 'SCHEDULED', 'a', 0, 'ra', run_at, 'u', ARGV[1])
      if payload ~= '' then redis.call('HSET', key, 'p', payload) end
      redis.call('ZADD', DUE, run_at, due_member(key, id))
      count(f[2], 'DEAD', 'SCHEDULED')
    end
    out[#out + 1] = 1; push_record(out, key, id)
  end
end
return commit(out)
