-- schedule_remove: delete cron schedules; tasks they fired stay.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8] -> <p>:{<shard>}:schedules; KEYS[9] -> <p>:{<shard>}:schedule_names;
-- KEYS[10..] -> <p>:{<shard>}:schedule:<name>
-- ARGV[i] -> the name of KEYS[9 + i]
-- Returns: per name, 1 if it existed, else 0.

local out = {}
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[8], ARGV[i])
  redis.call('ZREM', KEYS[9], ARGV[i])
  out[#out + 1] = redis.call('DEL', KEYS[9 + i])
end
return out
