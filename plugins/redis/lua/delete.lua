-- delete: remove tasks for good if they are in one of the given states (purge: DEAD;
-- prune: SUCCEEDED or CANCELLED finished before a time).
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> states, space separated; ARGV[2] -> finished before (exclusive) or '';
-- ARGV[3..] -> task ids
-- Returns: the number of tasks deleted.

local states, before = ' ' .. ARGV[1] .. ' ', ARGV[2]
local deleted = 0
for i = 3, #ARGV do
  local id, key = ARGV[i], KEYS[i + 5]
  local f = redis.call('HMGET', key, 's', 'f', 'sub')
  local wanted = f[1] and string.find(states, ' ' .. f[1] .. ' ', 1, true)
  if wanted and (before == '' or tonumber(f[2] or '0') < tonumber(before)) then
    unindex(key, id, f[1])
    redis.call('ZREM', ORDER, id)
    redis.call('DEL', key)
    count(f[3], f[1], nil)
    deleted = deleted + 1
  end
end
return commit(deleted)
