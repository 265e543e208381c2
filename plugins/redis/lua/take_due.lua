-- take_due: move due SCHEDULED tasks to READY. The caller read the candidates from the
-- due index just before; a candidate another caller took meanwhile is skipped, so no
-- task is ever taken twice.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8] -> fence key; KEYS[9..] -> task key of each candidate
-- ARGV[1] -> now; ARGV[2] -> ready_until; ARGV[3] -> fencing token or '';
-- ARGV[4..] -> due-index member ("<rank>:<id>") of each candidate
-- Returns: per task taken, its envelope, payload, attempt and run_at.
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
    count(redis.call('HGET', key, 'sub'), 'SCHEDULED', 'READY')
    local f = redis.call('HMGET', key, 't', 'p', 'a', 'ra')
    out[#out + 1] = f[1]; out[#out + 1] = f[2]; out[#out + 1] = f[3]; out[#out + 1] = f[4]
  end
end
return out
