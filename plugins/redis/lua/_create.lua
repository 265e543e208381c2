-- The body of create and create_publish, prepended to both (after _common.lua).

-- Apply the index writes gathered so far, before a write that must follow them.
local function flush()
  for index, items in pairs(removes) do call_chunked('ZREM', index, items); removes[index] = nil end
  for index, items in pairs(adds) do call_chunked('ZADD', index, items); adds[index] = nil end
end

-- Debounce: cancel the task under key if it is pending (SCHEDULED or READY, no attempt
-- started), as cancel.lua does; whether it was.
local function cancel_pending(key, id)
  local t = redis.call('HMGET', key, 's', 'a', 'sub', 'rk')
  local state = t[1]
  if (state ~= 'SCHEDULED' and state ~= 'READY') or t[2] ~= '0' then return false end
  flush() -- the task may be this batch's own: its index writes are still pending
  if state == 'SCHEDULED' then redis.call('ZREM', DUE, t[4] .. ':' .. id)
  else redis.call('ZREM', READY, id) end
  redis.call('HSET', key, 's', 'CANCELLED', 'f', ARGV[1], 'u', ARGV[1])
  redis.call('HDEL', key, 'lo', 'lu')
  redis.call('ZADD', FINISHED, ARGV[1], id)
  count(t[3], state, 'CANCELLED', ARGV[1])
  return true
end

local ACTIVE = {SCHEDULED = true, READY = true, RUNNING = true}
local UNIQUE_HOLD = 7 * 86400

-- Store the new tasks packed in ARGV[first..] (see create.lua), their task keys from
-- KEYS[key_base] and the idempotency keys right after those, two per keyed task: its
-- subject's key, then the key as it was named before keys were scoped by subject. With
-- streams (subject -> stream key), the id of each task created READY is also added to
-- its subject's stream.
-- Dedup modes (packed after max_attempts) change what the key does: throttle matches
-- within its period, unique while the key's task is active however old, and debounce
-- never matches but cancels the key's pending task.
-- Returns: the reply (per task: its id or the existing task's, 1 if created, else 0, and
-- its run_at or the existing task's; then a (number, replaced id) pair per debounced task
-- that replaced one) and the set of subjects something was added to.
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

  -- A keyed task's dedup mode ('t', 'd' or 'u') and period, packed after its
  -- max_attempts as "<max_attempts>:<mode><period>"; f[6] is left the max_attempts alone.
  local function dedup_of(f)
    if not string.find(f[6], ':', 1, true) then return nil end
    local max_attempts, mode, period = string.match(f[6], '^(%d*):(%a)(.*)$')
    f[6] = max_attempts
    return mode, tonumber(period)
  end

  -- The id, created_at and run_at the key names: this batch's task first.
  local function key_task(bkey, kkey)
    local found = batch[bkey]
    if found then return found[1], ARGV[1], found[2] end
    local held = redis.call('GET', kkey)
    if not held then return nil end
    return string.match(held, '^(%S+) (%S+) ?(%S*)$')
  end

  -- What a dedup mode makes of the key: the existing task's id and run_at to answer
  -- with (throttle, unique), or the id of the pending task replaced (debounce).
  local function dedup_existing(mode, period, bkey, kkey, tkey, id)
    if mode == 'd' and redis.call('EXISTS', tkey) == 1 then return nil end -- a retry
    local other, created, run_at = key_task(bkey, kkey)
    if not other then return nil end
    if mode == 't' then
      if now - tonumber(created) < period then return other, run_at end
      return nil
    end
    local okey = string.sub(tkey, 1, #tkey - #id) .. other
    if mode == 'u' then
      if ACTIVE[redis.call('HGET', okey, 's')] then return other, run_at end
      return nil
    end
    if other ~= id and cancel_pending(okey, other) then return nil, nil, other end
    return nil
  end

  -- Milliseconds the key lives: the idempotency window, or what its dedup mode says.
  local function key_ttl(mode, period, run_at)
    if not mode then return ARGV[4] end
    local seconds = period
    if mode == 'd' then seconds = tonumber(run_at) + window - now
    elseif mode == 'u' then seconds = tonumber(run_at) - now + math.max(UNIQUE_HOLD, window) end
    return math.max(math.ceil(seconds * 1000), 1)
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

  local replaced = {}
  for i = 1, n do
    local f = split(ARGV[first + i - 1], 9)
    local id, ikey, tkey = f[1], f[9], KEYS[key_base + i - 1]
    local kkey, bkey, existing, run_at, mode, period = nil, nil, nil, nil, nil, nil
    if ikey ~= '' then
      kkey, bkey = KEYS[next_key], f[2] .. ' ' .. ikey
      mode, period = dedup_of(f)
      if mode then
        local old
        existing, run_at, old = dedup_existing(mode, period, bkey, kkey, tkey, id)
        if old then replaced[#replaced + 1] = i; replaced[#replaced + 1] = old end
      else
        existing, run_at = existing_for(bkey, kkey, KEYS[next_key + 1], f, tkey)
      end
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
        redis.call('SET', kkey, id .. ' ' .. ARGV[1] .. ' ' .. f[4], 'PX', key_ttl(mode, period, f[4]))
        batch[bkey] = {id, f[4]}
      end
      answered[id] = true
      answer(id, 1, f[4])
    end
  end
  for j = 1, #replaced do out[#out + 1] = replaced[j] end
  return out, published
end
