-- workflow_update_runs: replace workflow runs, each a compare-and-set on its revision,
-- in order (the same run twice: the second is compared with what the first wrote).
-- KEYS[1] -> <p>:{<shard>}:runs_due   ZSET  active runs with a wake_at, score wake_at
-- KEYS[2..6] -> <p>:{<shard>}:runs_in:<state>  ZSET  the run ids in the state ARGV[1..5]
-- KEYS[5+2i] -> <p>:{<shard>}:run:<id>  HASH  j (JSON), rev, wf (workflow), st (state)
-- KEYS[6+2i] -> <p>:{<shard>}:workflow_runs:<workflow>  ZSET  its run ids, score 0
-- ARGV[1..5] -> the run states, in the order of KEYS[2..6]
-- ARGV[6+7(i-1)..] -> id, revision expected, new revision, workflow, state, wake_at if
--                     the run is active (else ''), JSON at the new revision, of run i
-- Returns: per run, 1 written, 0 not (unknown, or its revision differs).
-- A run that moved to another workflow stays in the old index too: listings check wf.

local by_state = {}
for s = 1, 5 do by_state[ARGV[s]] = KEYS[1 + s] end
local out = {}
for i = 1, (#ARGV - 5) / 7 do
  local a, key = 5 + 7 * (i - 1), KEYS[5 + 2 * i]
  local id, state = ARGV[a + 1], ARGV[a + 5]
  local stored = redis.call('HMGET', key, 'rev', 'st')
  if stored[1] == ARGV[a + 2] then
    redis.call('HSET', key, 'j', ARGV[a + 7], 'rev', ARGV[a + 3], 'wf', ARGV[a + 4],
      'st', state)
    redis.call('ZADD', KEYS[6 + 2 * i], 0, id)
    if by_state[stored[2]] then redis.call('ZREM', by_state[stored[2]], id) end
    redis.call('ZADD', by_state[state], 0, id)
    if ARGV[a + 6] ~= '' then redis.call('ZADD', KEYS[1], ARGV[a + 6], id)
    else redis.call('ZREM', KEYS[1], id) end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
