-- claim: lease tasks to one owner: READY (or RUNNING with an expired lease) -> RUNNING,
-- attempt + 1. Per item.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> owner; ARGV[2] -> now; ARGV[3] -> lease_until; ARGV[4..] -> task ids
-- Returns: per id, a flag (1 claimed, 0 not claimed, -1 unknown id) and the record
-- fields in FIELDS order (false for an unknown id).

local owner, now, until_ = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id, key = ARGV[i], KEYS[i + 4]
  local f = redis.call('HMGET', key, 's', 'lu', 'a', 'sub')
  local state = f[1]
  if not state then
    out[#out + 1] = -1; push_none(out)
  elseif state == 'READY' or (state == 'RUNNING' and tonumber(f[2] or '0') <= now) then
    if state == 'READY' then redis.call('ZREM', READY, id) end
    redis.call('HSET', key, 's', 'RUNNING', 'a', tonumber(f[3]) + 1, 'lo', owner,
      'lu', until_, 'u', ARGV[2])
    redis.call('ZADD', RUNNING, until_, id)
    if state == 'READY' then count(f[4], 'READY', 'RUNNING') end
    out[#out + 1] = 1; push_record(out, key)
  else
    out[#out + 1] = 0; push_record(out, key)
  end
end
return out
