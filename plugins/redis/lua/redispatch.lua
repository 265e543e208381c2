-- redispatch: restamp READY tasks to publish again: those whose stamp passed now, or
-- every one when asked. The caller read the candidates from the ready index.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8] -> fence key; KEYS[9..] -> task key of each candidate
-- ARGV[1] -> now; ARGV[2] -> ready_until; ARGV[3] -> fencing token or '';
-- ARGV[4] -> 1 for every READY task, else 0; ARGV[5..] -> candidate ids
-- Returns: per task restamped, its id, envelope, payload, attempt, run_at, subject and
-- rank.
-- Errors: "FENCED <newest>" when the token is older than one seen before.

check_fence(KEYS[8], ARGV[3])
local now, everything = tonumber(ARGV[1]), ARGV[4] == '1'
local out = {}
for i = 5, #ARGV do
  local id, key = ARGV[i], KEYS[i + 4]
  local score = redis.call('ZSCORE', READY, id)
  if score and (everything or tonumber(score) <= now) then
    redis.call('HSET', key, 'lu', ARGV[2], 'u', ARGV[1])
    redis.call('ZADD', READY, ARGV[2], id)
    push_task(out, id, redis.call('HMGET', key, 't', 'p', 'a', 'ra', 'sub', 'rk'))
  end
end
return out
