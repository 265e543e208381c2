-- create: store new tasks in one atomic step, honouring idempotency keys.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8..7+n] -> the task key of each of the n tasks
-- KEYS[8+n..] -> the idempotency key of each task that has one, in task order
-- ARGV[1] -> now; ARGV[2] -> idempotency window (s); ARGV[3] -> ready_until or '';
-- ARGV[4] -> key TTL (ms); ARGV[5] -> nonce of this call (a retried call finds its own
--            tasks and reports them created)
-- ARGV[6..] -> one per task, fields joined by "\n": id, subject, rank, run_at, attempt,
--              max_attempts or '', envelope JSON, payload JSON, idempotency key or ''
--              (last, so it may hold anything; JSON here never holds a raw newline)
-- Returns: per task, its id (or the existing task's) and 1 if created, else 0.

local now, window, ready_until, ttl, nonce =
  tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local n = #ARGV - 5
local out, batch, answered, next_key = {}, {}, {}, 8 + n

-- Whether the task under key was created by an earlier try of this very call, counting
-- only the first mention of an id in the batch, as the first try did.
local function ours(id, key)
  if answered[id] then return false end
  answered[id] = true
  return redis.call('HGET', key, 'cn') == nonce
end

local function split(packed)
  local fields, start = {}, 1
  for _ = 1, 8 do
    local stop = string.find(packed, '\n', start, true)
    fields[#fields + 1] = string.sub(packed, start, stop - 1)
    start = stop + 1
  end
  fields[9] = string.sub(packed, start)
  return fields
end

for i = 1, n do
  local f = split(ARGV[5 + i])
  local id, subject, rank, run_at, ikey = f[1], f[2], f[3], f[4], f[9]
  local tkey, kkey = KEYS[7 + i], nil
  local existing
  if ikey ~= '' then
    kkey = KEYS[next_key]
    next_key = next_key + 1
    existing = batch[ikey]
    if not existing then
      local held = redis.call('GET', kkey)
      if held then
        local sep = string.find(held, ' ', 1, true)
        if now - tonumber(string.sub(held, sep + 1)) < window then
          existing = string.sub(held, 1, sep - 1)
        end
      end
    end
  end
  if existing then
    out[#out + 1] = existing; out[#out + 1] = (existing == id and ours(id, tkey)) and 1 or 0
  elseif redis.call('EXISTS', tkey) == 1 then
    out[#out + 1] = id; out[#out + 1] = ours(id, tkey) and 1 or 0
  else
    local state = 'SCHEDULED'
    if ready_until ~= '' and tonumber(run_at) <= now then state = 'READY' end
    redis.call('HSET', tkey, 't', f[7], 'p', f[8], 's', state, 'sub', subject, 'rk', rank,
      'u', ARGV[1], 'e', '[]', 'a', f[5], 'ra', run_at, 'cn', nonce)
    if f[6] ~= '' then redis.call('HSET', tkey, 'm', f[6]) end
    if state == 'READY' then
      redis.call('HSET', tkey, 'lu', ready_until)
      redis.call('ZADD', READY, ready_until, id)
    else
      redis.call('ZADD', DUE, run_at, rank .. ':' .. id)
    end
    redis.call('ZADD', ORDER, 0, id)
    count(subject, nil, state)
    if ikey ~= '' then
      redis.call('SET', kkey, id .. ' ' .. ARGV[1], 'PX', ttl)
      batch[ikey] = id
    end
    answered[id] = true
    out[#out + 1] = id; out[#out + 1] = 1
  end
end
return out
