-- flow_admit: admit each task, in order, or refuse it taking nothing (FlowLedger.admit).
-- KEYS[1] -> <f>slots
-- KEYS[2..] -> per request, in order: <f>slot:<n> of each slot, <f>bucket:<n> of each
--              bucket, then <f>window:<n> and <f>wq:<n> of each window
-- ARGV[1] -> now
-- ARGV[2..] -> per request: task id, lease_until, slot count, bucket count, window
--              count, then (name, limit) per slot, (rate per second, burst) per bucket
--              and (count, period) per window
-- Returns: per request, a code and a value: 1 and '' (admitted), 0 and the name of the
--          full slot (wait), or 2 and retry_at (a bucket or window refused).

local SLOTS = KEYS[1]
local now_text = ARGV[1]
local now = tonumber(now_text)
local out, arg, key = {}, 2, 2

-- One request's gates, read from ARGV[arg..] and KEYS[key..].
local function read_request()
  local r = {id = ARGV[arg], until_ = ARGV[arg + 1], slots = {}, buckets = {}, windows = {}}
  local ns, nb, nw = tonumber(ARGV[arg + 2]), tonumber(ARGV[arg + 3]), tonumber(ARGV[arg + 4])
  arg = arg + 5
  for i = 1, ns do
    r.slots[i] = {name = ARGV[arg], limit = tonumber(ARGV[arg + 1]), key = KEYS[key]}
    arg, key = arg + 2, key + 1
  end
  for i = 1, nb do
    r.buckets[i] = {rate = tonumber(ARGV[arg]), burst = tonumber(ARGV[arg + 1]), key = KEYS[key]}
    arg, key = arg + 2, key + 1
  end
  for i = 1, nw do
    r.windows[i] = {count = tonumber(ARGV[arg]), period = tonumber(ARGV[arg + 1]),
      key = KEYS[key], qkey = KEYS[key + 1]}
    arg, key = arg + 2, key + 2
  end
  return r
end

-- The first full slot's name, or nil. Every slot's limit is remembered on the way.
local function full_slot(r)
  local full = nil
  for _, s in ipairs(r.slots) do
    redis.call('HSET', SLOTS, s.name, s.limit)
    if not full then
      local taken = holders(s.key, now_text)
      if redis.call('ZSCORE', s.key, r.id) then taken = taken - 1 end
      if taken >= s.limit then full = s.name end
    end
  end
  return full
end

-- A bucket's state stops mattering once its tat has passed and its queue can no longer
-- hold a retry back (meter: queue + interval <= now - tolerance).
local function bucket_expiry(b)
  local interval = 1.0 / b.rate
  return math.max(b.tat, b.q + interval + (b.burst - 1) * interval)
end

-- A window's times matter for period seconds, its queue until queue + period / count.
local function window_expiry(w, q)
  local ms = idle_ms(math.max(now + w.period, q + w.period / w.count), now)
  redis.call('PEXPIRE', w.key, ms)
  redis.call('PEXPIRE', w.qkey, ms)
end

-- Run every bucket and window; nil if all allow, else the latest retry_at (the queue
-- of each one that refused has moved).
local function metered(r)
  local retry = nil
  for _, b in ipairs(r.buckets) do
    local state = redis.call('HMGET', b.key, 'tat', 'q')
    local ok, tat, q, at = bucket_admit(tonumber(state[1]) or 0, tonumber(state[2]) or 0,
      now, b.rate, b.burst)
    b.tat, b.q = tat, q
    if not ok then
      redis.call('HSET', b.key, 'q', fmt(q))
      redis.call('PEXPIRE', b.key, idle_ms(bucket_expiry(b), now))
      retry = math.max(retry or at, at)
    end
  end
  for _, w in ipairs(r.windows) do
    local ok, q, at = window_admit(w.key, tonumber(redis.call('HGET', w.qkey, 'q')) or 0,
      now, w.count, w.period)
    if not ok then
      redis.call('HSET', w.qkey, 'q', fmt(q))
      window_expiry(w, q)
      retry = math.max(retry or at, at)
    end
  end
  return retry
end

-- Take every slot, bucket and window of an admitted request.
local function take(r)
  -- GT: a holder admitted again keeps the later of its two untils.
  for _, s in ipairs(r.slots) do redis.call('ZADD', s.key, 'GT', r.until_, r.id) end
  for _, b in ipairs(r.buckets) do
    redis.call('HSET', b.key, 'tat', fmt(b.tat))
    redis.call('PEXPIRE', b.key, idle_ms(bucket_expiry(b), now))
  end
  for _, w in ipairs(r.windows) do
    local n = redis.call('HINCRBY', w.qkey, 'n', 1)
    redis.call('ZADD', w.key, now_text, n)
    window_expiry(w, tonumber(redis.call('HGET', w.qkey, 'q')) or 0)
  end
end

while arg <= #ARGV do
  local r = read_request()
  local full = full_slot(r)
  if full then
    out[#out + 1] = 0; out[#out + 1] = full
  else
    local retry = metered(r)
    if retry then
      out[#out + 1] = 2; out[#out + 1] = fmt(retry)
    else
      take(r)
      out[#out + 1] = 1; out[#out + 1] = ''
    end
  end
end
return out
