-- flow_wake: give SCHEDULED tasks due later the run_at now, so the forwarder takes them
-- at once; other tasks are untouched.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8..] -> the task key of each id
-- ARGV[1] -> now; ARGV[2..] -> the task ids
-- Returns: how many tasks changed.

local now, changed = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[i + 6]
  local f = redis.call('HMGET', key, 's', 'ra', 'rk')
  if f[1] == 'SCHEDULED' and tonumber(f[2]) > now then
    local member = f[3] .. ':' .. id
    redis.call('ZADD', DUE, 'XX', ARGV[1], member)
    redis.call('HSET', key, 'ra', ARGV[1], 'u', ARGV[1])
    changed = changed + 1
  end
end
return changed
