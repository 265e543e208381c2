-- workflow_create_runs: store new workflow runs at revision 1, all or none.
-- KEYS[1] -> <p>:{<shard>}:runs       ZSET  every run id, score 0 (lexical order of ids)
-- KEYS[2] -> <p>:{<shard>}:runs_due   ZSET  active runs with a wake_at, score wake_at
-- KEYS[3..7] -> <p>:{<shard>}:runs_in:<state>  ZSET  the run ids in the state ARGV[1..5]
-- KEYS[6+2i] -> <p>:{<shard>}:run:<id>  HASH  j (JSON), rev, wf (workflow), st (state)
-- KEYS[7+2i] -> <p>:{<shard>}:workflow_runs:<workflow>  ZSET  its run ids, score 0
-- ARGV[1..5] -> the run states, in the order of KEYS[3..7]
-- ARGV[6+5(i-1)..] -> id, workflow, state, wake_at if the run is active (else ''),
--                     JSON at revision 1, of run i (1-based)
-- Returns: 0 when written; else the index (1-based) of the first run whose id is taken,
-- and nothing was written.

local n = (#ARGV - 5) / 5
local by_state = {}
for s = 1, 5 do by_state[ARGV[s]] = KEYS[2 + s] end
for i = 1, n do
  if redis.call('EXISTS', KEYS[6 + 2 * i]) == 1 then return i end
end
for i = 1, n do
  local a = 5 + 5 * (i - 1)
  local id, state = ARGV[a + 1], ARGV[a + 3]
  redis.call('HSET', KEYS[6 + 2 * i], 'j', ARGV[a + 5], 'rev', '1', 'wf', ARGV[a + 2],
    'st', state)
  redis.call('ZADD', KEYS[1], 0, id)
  redis.call('ZADD', KEYS[7 + 2 * i], 0, id)
  redis.call('ZADD', by_state[state], 0, id)
  if ARGV[a + 4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[a + 4], id) end
end
return 0
