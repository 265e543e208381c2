-- quarantine: make DEAD the tasks whose stored record the store cannot decode (ADR 0027),
-- leaving their fields as they are, so they are seen (dlq ls) and purged like any dead
-- task and stop nothing else. Per item; a task already DEAD, or gone, is left alone.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> now; ARGV[2..] -> task ids
-- Returns: the ids made DEAD.

local out = {}
for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[i + 6]
  local f = redis.call('HMGET', key, 's', 'sub', 'rk')
  local state = f[1]
  if state and state ~= 'DEAD' then
    if state ~= 'SCHEDULED' or f[3] then unindex(key, id, state) end
    redis.call('HSET', key, 's', 'DEAD', 'f', ARGV[1], 'u', ARGV[1])
    redis.call('HDEL', key, 'lo', 'lu')
    redis.call('ZADD', DEAD, 0, id)
    count(f[2] or '', state, 'DEAD', ARGV[1])
    out[#out + 1] = id
  end
end
return commit(out)
