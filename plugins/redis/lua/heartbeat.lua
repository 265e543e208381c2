-- heartbeat: extend the leases an owner holds on RUNNING tasks.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> owner; ARGV[2] -> lease_until; ARGV[3..] -> task ids
-- Returns: per id, 1 held, 2 held with a cancel requested, 0 lost.

local owner, until_ = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local id, key = ARGV[i], KEYS[i + 5]
  local f = redis.call('HMGET', key, 's', 'lo', 'c')
  if f[1] == 'RUNNING' and f[2] == owner then
    redis.call('HSET', key, 'lu', until_)
    redis.call('ZADD', RUNNING, until_, id)
    out[#out + 1] = f[3] and 2 or 1
  else
    out[#out + 1] = 0
  end
end
return out
