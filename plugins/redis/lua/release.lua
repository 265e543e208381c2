-- release: move READY tasks back to SCHEDULED (their publish failed); others untouched.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> now; ARGV[2..] -> task ids
-- Returns: the number of tasks moved.

local moved = 0
for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[i + 6]
  if redis.call('HGET', key, 's') == 'READY' then
    redis.call('ZREM', READY, id)
    redis.call('HSET', key, 's', 'SCHEDULED', 'u', ARGV[1])
    redis.call('HDEL', key, 'lu')
    redis.call('ZADD', DUE, redis.call('HGET', key, 'ra'), due_member(key, id))
    count(redis.call('HGET', key, 'sub'), 'READY', 'SCHEDULED')
    moved = moved + 1
  end
end
return commit(moved)
