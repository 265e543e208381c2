-- take_due: move due SCHEDULED tasks to READY. The caller read the candidates from the
-- due index just before; a candidate another caller took meanwhile is skipped, so no
-- task is ever taken twice.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8] -> fence key; KEYS[9..] -> task key of each candidate
-- ARGV[1] -> now; ARGV[2] -> ready_until; ARGV[3] -> fencing token or '';
-- ARGV[4..] -> due-index member ("<rank>:<id>") of each candidate
-- Returns: per task taken, its id, envelope, payload, attempt, run_at, subject and rank.
-- Errors: "FENCED <newest>" when the token is older than one seen before.

check_fence(KEYS[8], ARGV[3])
local now, ready_until = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 4, #ARGV do
  local member, key = ARGV[i], KEYS[i + 5]
  local score = redis.call('ZSCORE', DUE, member)
  if score and tonumber(score) <= now and redis.call('ZREM', DUE, member) == 1 then
    local id = string.sub(member, string.find(member, ':', 1, true) + 1)
    redis.call('HSET', key, 's', 'READY', 'lu', ready_until, 'u', ARGV[1])
    redis.call('ZADD', READY, ready_until, id)
    local f = redis.call('HMGET', key, 't', 'p', 'a', 'ra', 'sub', 'rk')
    count(f[5], 'SCHEDULED', 'READY')
    push_task(out, id, f)
  end
end
return commit(out)
