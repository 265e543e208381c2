-- recover: take back RUNNING tasks whose lease expired (their worker died). Each gets a
-- lease error naming its lease owner and goes to SCHEDULED at now, CANCELLED if a cancel
-- was requested, or DEAD once its attempts are spent. The caller read the candidates from the running index.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8] -> fence key; KEYS[9..] -> task key of each candidate
-- ARGV[1] -> now; ARGV[2] -> default max attempts, or '' (none known: only a task's own
--            max attempts sends it to DEAD); ARGV[3] -> fencing token or '';
-- ARGV[4] -> the error message as a JSON string; ARGV[5..] -> candidate ids
-- Returns: per task changed, its record (the id and the FIELDS of _admin.lua).
-- Errors: "FENCED <newest>" when the token is older than one seen before.

check_fence(KEYS[8], ARGV[3])
local now, default_max = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 5, #ARGV do
  local id, key = ARGV[i], KEYS[i + 4]
  local f = redis.call('HMGET', key, 's', 'lu', 'a', 'm', 'c', 'sub', 'e', 'lo')
  if f[1] == 'RUNNING' and tonumber(f[2] or '0') <= now then
    local attempt = tonumber(f[3])
    local limit = f[4] and tonumber(f[4]) or default_max
    local err = '{"attempt":' .. f[3] .. ',"at":' .. ARGV[1] .. ',"message":' .. ARGV[4]
      .. ',"kind":"lease"'
    if f[8] then err = err .. ',"worker":' .. cjson.encode(f[8]) end
    err = err .. '}'
    local state = 'SCHEDULED'
    if f[5] then state = 'CANCELLED' elseif limit and attempt >= limit then state = 'DEAD' end
    redis.call('ZREM', RUNNING, id)
    redis.call('HDEL', key, 'lo', 'lu')
    redis.call('HSET', key, 's', state, 'u', ARGV[1], 'e', append(f[7], err))
    if state == 'SCHEDULED' then
      redis.call('HSET', key, 'ra', ARGV[1])
      redis.call('ZADD', DUE, ARGV[1], due_member(key, id))
    else
      redis.call('HSET', key, 'f', ARGV[1])
      if state == 'DEAD' then redis.call('ZADD', DEAD, 0, id)
      else redis.call('ZADD', FINISHED, ARGV[1], id) end
    end
    count(f[6], 'RUNNING', state, ARGV[1])
    push_record(out, key, id)
  end
end
return commit(out)
