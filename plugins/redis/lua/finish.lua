-- finish: record how attempts ended, each a compare-and-set on RUNNING and the owner.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each outcome
-- ARGV[i] -> one per outcome, fields joined by "\n": id, owner, state (SUCCEEDED |
--            SCHEDULED | DEAD | CANCELLED), at, run_at or '', refund 1|0, error JSON or
--            '', result JSON or '' (last; JSON here never holds a raw newline)
-- Returns: per outcome, 1 applied, 0 not (the lease was lost; nothing changed).

local function split(packed)
  local fields, start = {}, 1
  for _ = 1, 7 do
    local stop = string.find(packed, '\n', start, true)
    fields[#fields + 1] = string.sub(packed, start, stop - 1)
    start = stop + 1
  end
  fields[8] = string.sub(packed, start)
  return fields
end

local out = {}
for i = 1, #ARGV do
  local o = split(ARGV[i])
  local id, owner, state, at = o[1], o[2], o[3], o[4]
  local key = KEYS[7 + i]
  local f = redis.call('HMGET', key, 's', 'lo', 'a', 'sub', 'e')
  if f[1] ~= 'RUNNING' or f[2] ~= owner then
    out[#out + 1] = 0
  else
    redis.call('ZREM', RUNNING, id)
    redis.call('HDEL', key, 'lo', 'lu')
    redis.call('HSET', key, 's', state, 'u', at)
    if o[7] ~= '' then redis.call('HSET', key, 'e', append(f[5], o[7])) end
    if state == 'SCHEDULED' then
      local attempt = tonumber(f[3])
      if o[6] == '1' then attempt = attempt - 1 end
      if attempt < 0 then attempt = 0 end
      local run_at = o[5]
      if run_at == '' then run_at = at end
      redis.call('HSET', key, 'a', attempt, 'ra', run_at)
      redis.call('ZADD', DUE, run_at, due_member(key, id))
    else
      redis.call('HSET', key, 'f', at)
      if state == 'SUCCEEDED' then redis.call('HSET', key, 'r', o[8]) end
      if state == 'DEAD' then redis.call('ZADD', DEAD, 0, id)
      else redis.call('ZADD', FINISHED, at, id) end
    end
    count(f[4], 'RUNNING', state)
    out[#out + 1] = 1
  end
end
return out
