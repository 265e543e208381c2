-- stamp_ready: give READY tasks a new lease_until (the forwarder published what it took
-- ahead of time); others untouched.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> ready_until; ARGV[2..] -> task ids
-- Returns: the number of tasks stamped.

local stamped = 0
for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[i + 6]
  if redis.call('HGET', key, 's') == 'READY' then
    redis.call('HSET', key, 'lu', ARGV[1])
    redis.call('ZADD', READY, ARGV[1], id)
    stamped = stamped + 1
  end
end
return commit(stamped)
