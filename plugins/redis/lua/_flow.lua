-- Shared by the flow-control scripts (ADR 0038): the arithmetic of atp.core.flow.meter,
-- line for line, and the slot and waiter-list helpers. Prepended to each flow script
-- (``_LIBRARIES`` in _connection.py).
--
-- Key schema: every flow key is in the store shard's hash tag, so one script may touch
-- several (a task's slots, buckets and windows at once); <f> is "<p>:{<shard>}:flow:".
--   <f>rules        HASH   limit name -> limit JSON (core.flow.rules.limit_to_dict)
--   <f>pauses       SET    paused subject patterns
--   <f>version      STRING the rules' version, INCR on every change
--   <f>slots        HASH   slot name -> its limit, as the latest admit named it; the field
--                          goes once the slot has neither holders nor waiters
--   <f>slot:<n>     ZSET   holders of slot n: task id -> until
--   <f>gc           STRING the HSCAN cursor of wake_ready's walk over <f>slots (absent: 0)
--   <f>waiting      SET    names of the waiter lists that hold a task
--   <f>wait:<l>     ZSET   waiter list l: task ids, score 0 (lexical order: ids sort by
--                          creation time, so the oldest task comes out first)
--   <f>bucket:<n>   HASH   token bucket n: tat, q (expires once idle)
--   <f>window:<n>   ZSET   window n: admission number -> admission time (expires idle)
--   <f>wq:<n>       HASH   window n: q, and n (the counter naming admissions)
-- Times travel as decimal strings; what Lua computes goes back as "%.17g", which a
-- double survives exactly.

local EPSILON = 1e-9

local function fmt(x)
  return string.format('%.17g', x)
end

-- meter.bucket_admit: (allowed, new_tat, new_queue, retry_at).
local function bucket_admit(tat, queue, now, rate, burst)
  local interval = 1.0 / rate
  local tolerance = (burst - 1) * interval
  local start = math.max(tat, now)
  if start - now <= tolerance + EPSILON then
    return true, start + interval, queue, now
  end
  local retry_at = math.max(queue + interval, start - tolerance)
  return false, tat, retry_at, retry_at
end

-- meter.window_admit over the ZSET at key (scores are the admission times):
-- (allowed, new_queue, retry_at). Drops the times older than period, as live_times.
local function window_admit(key, queue, now, count, period)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - period))
  local n = redis.call('ZCARD', key)
  if n < count then
    return true, queue, now
  end
  local oldest = redis.call('ZRANGE', key, n - count, n - count, 'WITHSCORES')
  local earliest = tonumber(oldest[2]) + period
  local retry_at = math.max(queue + period / count, earliest)
  return false, retry_at, retry_at
end

-- Milliseconds until a state that stops mattering at 'idle' may go (a second's slack).
local function idle_ms(idle, now)
  return math.max(math.ceil((idle - now) * 1000) + 1000, 1000)
end

-- The live holders of a slot: those whose until has passed are dropped first.
local function holders(key, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key)
end

-- core.flow.rules.PAUSE_PREFIX: the waiter lists of paused subjects, which no room opens.
local PAUSE_PREFIX = 'p:'

local function is_pause(name)
  return string.sub(name, 1, #PAUSE_PREFIX) == PAUSE_PREFIX
end

-- Room in slot name (limit minus live holders); a limit not remembered counts as 1 (every
-- limit is at least 1), and a pause list has none.
local function room(slots, name, key, now)
  if is_pause(name) then return 0 end
  local limit = redis.call('HGET', slots, name) or '1'
  return tonumber(limit) - holders(key, now)
end

-- Forget the limit of slot name once it has neither holders nor waiters (its holder ZSET
-- and waiter ZSET are gone by then). Without now (unpark has no time) a holder past its
-- until still counts.
local function forget_idle(slots, name, key, wkey, now)
  if is_pause(name) then return end
  local held
  if now then held = holders(key, now) else held = redis.call('EXISTS', key) end
  if held == 0 and redis.call('EXISTS', wkey) == 0 then redis.call('HDEL', slots, name) end
end

-- Whether id a sorts before id b, byte by byte as a ZSET orders its members (Lua's '<'
-- on strings follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Move up to n of the oldest (lowest) waiters of list name (ZSET wkey) to out; when the list is
-- left empty it leaves the registry of lists with waiters.
local function take_waiters(waiting, name, wkey, n, out)
  if n <= 0 then return end
  local ids = redis.call('ZRANGE', wkey, 0, n - 1)
  if #ids > 0 then
    redis.call('ZREM', wkey, unpack(ids))
    for i = 1, #ids do out[#out + 1] = ids[i] end
  end
  if redis.call('EXISTS', wkey) == 0 then redis.call('SREM', waiting, name) end
end
