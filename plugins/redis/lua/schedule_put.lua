-- schedule_put: create or replace cron schedules, all or none, each a compare-and-set on
-- its revision (0: create, the name must be free).
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8] -> <p>:{<shard>}:schedules       ZSET  active schedules, score next_tick
-- KEYS[9] -> <p>:{<shard>}:schedule_names  ZSET  every schedule, score 0 (by name)
-- KEYS[10..] -> <p>:{<shard>}:schedule:<name>  HASH  j (JSON), rev, nt, paused
-- ARGV[1+6i..] -> name, revision read (0 to create), JSON as stored, next_tick,
--                 1 if paused else 0, the new revision
-- Returns: 0 when written; else {i, "exists" | "conflict"} for the first schedule
-- (1-based) that stopped the batch, and nothing was written.

local n = #ARGV / 6
for i = 0, n - 1 do
  local a = 6 * i
  local current = redis.call('HGET', KEYS[10 + i], 'rev')
  if ARGV[a + 2] == '0' and current then return {i + 1, 'exists'} end
  if ARGV[a + 2] ~= '0' and current ~= ARGV[a + 2] then return {i + 1, 'conflict'} end
end
for i = 0, n - 1 do
  local a, key = 6 * i, KEYS[10 + i]
  local name = ARGV[a + 1]
  redis.call('HSET', key, 'j', ARGV[a + 3], 'rev', ARGV[a + 6], 'nt', ARGV[a + 4],
    'paused', ARGV[a + 5])
  redis.call('ZADD', KEYS[9], 0, name)
  if ARGV[a + 5] == '1' then redis.call('ZREM', KEYS[8], name)
  else redis.call('ZADD', KEYS[8], ARGV[a + 4], name) end
end
return 0
