-- The body of create and create_publish, prepended to both (after _common.lua).

-- Store the new tasks packed in ARGV[first..] (see create.lua), their task keys from
-- KEYS[key_base] and the idempotency keys right after those, two per keyed task: its
-- subject's key, then the key as it was named before keys were scoped by subject. With
-- streams (subject -> stream key), the id of each task created READY is also added to
-- its subject's stream.
-- Returns: the reply (per task: its id or the existing task's, 1 if created, else 0, and
-- its run_at or the existing task's) and the set of subjects something was added to.
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

  -- A key holds "<id> <created_at> <run_at>"; the id and run_at if inside the window.
  local function live(held)
    local id, created, run_at = string.match(held, '^(%S+) (%S+) ?(%S*)$')
    if now - tonumber(created) < window then return id, run_at end
    return nil
  end

  -- A key named before the scoping (ADR 0028) holds "<id> <created_at>" and still counts
  -- for its own task's subject; its task's key shares the shard's tag with tkey.
  local function legacy_for(lkey, subject, tkey, id)
    local held = redis.call('GET', lkey)
    if not held then return nil end
    local found = live(held)
    if not found then return nil end
    local task = redis.call('HMGET', string.sub(tkey, 1, #tkey - #id) .. found, 'sub', 'ra')
    if task[1] == subject then return found, task[2] end
    return nil
  end

  local function existing_for(bkey, kkey, lkey, f, tkey)
    local found = batch[bkey]
    if found then return found[1], found[2] end
    local held = redis.call('GET', kkey)
    if held then return live(held) end
    return legacy_for(lkey, f[2], tkey, f[1])
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

  local function answer(id, created, run_at)
    out[#out + 1] = id; out[#out + 1] = created; out[#out + 1] = run_at
  end

  for i = 1, n do
    local f = split(ARGV[first + i - 1], 9)
    local id, ikey, tkey = f[1], f[9], KEYS[key_base + i - 1]
    local kkey, bkey, existing, run_at = nil, nil, nil, nil
    if ikey ~= '' then
      kkey, bkey = KEYS[next_key], f[2] .. ' ' .. ikey
      existing, run_at = existing_for(bkey, kkey, KEYS[next_key + 1], f, tkey)
      next_key = next_key + 2
    end
    if existing then
      answer(existing, (existing == id and ours(id, tkey)) and 1 or 0, run_at)
    elseif redis.call('EXISTS', tkey) == 1 then
      answer(id, ours(id, tkey) and 1 or 0, redis.call('HGET', tkey, 'ra'))
    else
      local state = 'SCHEDULED'
      if ready_until ~= '' and tonumber(f[4]) <= now then state = 'READY' end
      store(f, tkey, state)
      if kkey then
        redis.call('SET', kkey, id .. ' ' .. ARGV[1] .. ' ' .. f[4], 'PX', ARGV[4])
        batch[bkey] = {id, f[4]}
      end
      answered[id] = true
      answer(id, 1, f[4])
    end
  end
  return out, published
end
