-- The body of create and create_publish, prepended to both (after _common.lua).

-- Store the new tasks packed in ARGV[first..] (see create.lua), their task keys from
-- KEYS[key_base] and the idempotency keys right after those. With streams (subject ->
-- stream key), the id of each task created READY is also added to its subject's stream.
-- Returns: the reply (per task: its id or the existing task's, and 1 if created, else 0)
-- and the set of subjects something was added to.
local function create_tasks(key_base, first, streams)
  local now, window, ready_until, nonce = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[5]
  local n = #ARGV - first + 1
  local out, batch, answered, published, next_key = {}, {}, {}, {}, key_base + n

  -- Whether the task under key was created by an earlier try of this very call, counting
  -- only the first mention of an id in the batch, as the first try did.
  local function ours(id, key)
    if answered[id] then return false end
    answered[id] = true
    return redis.call('HGET', key, 'cn') == nonce
  end

  local function existing_for(ikey, kkey)
    local found = batch[ikey]
    if found then return found end
    local held = redis.call('GET', kkey)
    if not held then return nil end
    local sep = string.find(held, ' ', 1, true)
    if now - tonumber(string.sub(held, sep + 1)) < window then
      return string.sub(held, 1, sep - 1)
    end
    return nil
  end

  -- The task's hash, its optional fields (lu, m) passed on as they are: no table and
  -- unpack per task.
  local function hset(tkey, f, state, ...)
    redis.call('HSET', tkey, 't', f[7], 'p', f[8], 's', state, 'sub', f[2], 'rk', f[3],
      'u', ARGV[1], 'a', f[5], 'ra', f[4], 'cn', nonce, ...)
  end

  local function store(f, tkey, state)
    local id, subject, run_at, max_attempts = f[1], f[2], f[4], f[6]
    if state == 'READY' then
      if max_attempts ~= '' then hset(tkey, f, state, 'lu', ready_until, 'm', max_attempts)
      else hset(tkey, f, state, 'lu', ready_until) end
      add_later(READY, ready_until, id)
      if streams then
        redis.call('XADD', streams[subject], '*', 'i', id)
        published[subject] = true
      end
    else
      if max_attempts ~= '' then hset(tkey, f, state, 'm', max_attempts)
      else hset(tkey, f, state) end
      add_later(DUE, run_at, f[3] .. ':' .. id)
    end
    add_later(ORDER, 0, id)
    count(subject, nil, state)
  end

  for i = 1, n do
    local f = split(ARGV[first + i - 1], 9)
    local id, ikey, tkey = f[1], f[9], KEYS[key_base + i - 1]
    local kkey, existing = nil, nil
    if ikey ~= '' then
      kkey = KEYS[next_key]
      next_key = next_key + 1
      existing = existing_for(ikey, kkey)
    end
    if existing then
      out[#out + 1] = existing; out[#out + 1] = (existing == id and ours(id, tkey)) and 1 or 0
    elseif redis.call('EXISTS', tkey) == 1 then
      out[#out + 1] = id; out[#out + 1] = ours(id, tkey) and 1 or 0
    else
      local state = 'SCHEDULED'
      if ready_until ~= '' and tonumber(f[4]) <= now then state = 'READY' end
      store(f, tkey, state)
      if kkey then
        redis.call('SET', kkey, id .. ' ' .. ARGV[1], 'PX', ARGV[4])
        batch[ikey] = id
      end
      answered[id] = true
      out[#out + 1] = id; out[#out + 1] = 1
    end
  end
  return out, published
end
