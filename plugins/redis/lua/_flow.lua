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
--   <f>slot:<n>     ZSET   holders of slot n: task id -> until (an admitted task's
--                          lease, or the reserve of a waiter woken for its room)
--   <f>gc           STRING the HSCAN cursor of wake_ready's walk over <f>slots (absent: 0)
--   <f>waiting      SET    names of the waiter lists that hold a task
--   waiter list l (ADR 0039: stride scheduling over its groups, rank order within one):
--   <f>members:<l>  HASH   task id -> its group ("" for none): the list's waiters
--   <f>groups:<l>   ZSET   each waiting group -> its pass (equal passes: lexical, so
--                          the lower name first)
--   <f>list:<l>     HASH   time (the pass the group last served reached, absent: 0), and
--                          w:<g> -> the weight of waiting group g
--   <f>queue:<#l>:<l>:<g>  ZSET  group g's waiters: task id -> rank (equal ranks:
--                          lexical, so the lower id first); #l is l's length in bytes,
--                          so no two (list, group) pairs share a key
--   The four go once the list is empty; a group's queue, pass and weight once it is.
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

-- core.flow.rules.PAUSE_PREFIX and core.flow.breaker.BREAKER_PREFIX: the waiter lists of
-- paused subjects and of open breakers, which no room opens (only unpark empties them).
local PAUSE_PREFIX, BREAKER_PREFIX = 'p:', 'b:'

local function is_held(name)
  local head = string.sub(name, 1, 2) -- both prefixes are two bytes
  return head == PAUSE_PREFIX or head == BREAKER_PREFIX
end

-- Room in slot name (limit minus live holders); a limit not remembered counts as 1 (every
-- limit is at least 1), and a pause or breaker list has none.
local function room(slots, name, key, now)
  if is_held(name) then return 0 end
  local limit = redis.call('HGET', slots, name) or '1'
  return tonumber(limit) - holders(key, now)
end

-- Forget the limit of slot name once it has neither holders nor waiters (its holder ZSET
-- and members HASH are gone by then). Without now (unpark has no time) a holder past its
-- until still counts.
local function forget_idle(slots, name, key, members, now)
  if is_held(name) then return end
  local held
  if now then held = holders(key, now) else held = redis.call('EXISTS', key) end
  if held == 0 and redis.call('EXISTS', members) == 0 then redis.call('HDEL', slots, name) end
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

-- The keys of waiter list name, built from the flow prefix base (see the schema), and
-- what this script knows of them, so a batch of waiters of one group costs a few calls
-- each: known[g] is the weight it last wrote for waiting group g, registered whether the
-- list is in the registry.
local function wait_list(base, name)
  return {
    name = name,
    members = base .. 'members:' .. name,
    groups = base .. 'groups:' .. name,
    meta = base .. 'list:' .. name,
    queues = base .. 'queue:' .. #name .. ':' .. name .. ':',
    known = {},
    registered = false,
  }
end

-- A group whose queue is empty stops waiting: its pass and weight go.
local function leave_if_empty(list, group)
  if redis.call('EXISTS', list.queues .. group) == 0 then
    redis.call('ZREM', list.groups, group)
    redis.call('HDEL', list.meta, 'w:' .. group)
    list.known[group] = nil
  end
end

-- Add task id to list with its group, weight and rank (decimal strings); a task there
-- already keeps its place, moved to this group and rank. A group that starts waiting
-- starts at the list's time.
local function add_waiter(waiting, list, id, group, weight, rank)
  local old = redis.call('HGET', list.members, id)
  if old and old ~= group then
    redis.call('ZREM', list.queues .. old, id)
    leave_if_empty(list, old)
  end
  local known = list.known[group]
  if not known and not redis.call('ZSCORE', list.groups, group) then
    redis.call('ZADD', list.groups, redis.call('HGET', list.meta, 'time') or '0', group)
  end
  if known ~= weight then
    redis.call('HSET', list.meta, 'w:' .. group, weight)
    list.known[group] = weight
  end
  redis.call('ZADD', list.queues .. group, rank, id)
  redis.call('HSET', list.members, id, group)
  if not list.registered then
    redis.call('SADD', waiting, list.name)
    list.registered = true
  end
end

-- The next waiter of list in wake order, or nil if it has none: the group of the lowest
-- pass (then the lower name), and in it the lowest rank (then the lower id).
local function peek(list)
  local top = redis.call('ZRANGE', list.groups, 0, 0, 'WITHSCORES')
  if #top == 0 then return nil end
  local head = redis.call('ZRANGE', list.queues .. top[1], 0, 0, 'WITHSCORES')
  return {group = top[1], pass = tonumber(top[2]), id = head[1], rank = tonumber(head[2])}
end

-- Whether waiter a (a peek) comes before waiter b of another list: lower rank, then id.
local function sooner(a, b)
  if a.rank ~= b.rank then return a.rank < b.rank end
  return before(a.id, b.id)
end

-- Take waiter nxt (list's peek) out to out: its group's pass grows by 1 / weight, and
-- the list's time becomes that pass. A list left empty forgets its time and passes, and
-- leaves the registry of lists with waiters.
local function take_next(waiting, list, nxt, out)
  out[#out + 1] = nxt.id
  redis.call('ZREM', list.queues .. nxt.group, nxt.id)
  redis.call('HDEL', list.members, nxt.id)
  if redis.call('EXISTS', list.members) == 0 then
    redis.call('DEL', list.groups, list.meta)
    redis.call('SREM', waiting, list.name)
    list.known, list.registered = {}, false
    return
  end
  local weight = tonumber(redis.call('HGET', list.meta, 'w:' .. nxt.group)) or 1
  local pass = fmt(nxt.pass + 1 / weight)
  redis.call('HSET', list.meta, 'time', pass)
  if redis.call('EXISTS', list.queues .. nxt.group) == 0 then
    leave_if_empty(list, nxt.group)
  else
    redis.call('ZADD', list.groups, pass, nxt.group)
  end
end

-- Move up to n waiters of list to out, in wake order.
local function take_waiters(waiting, list, n, out)
  for _ = 1, n do
    local nxt = peek(list)
    if not nxt then return end
    take_next(waiting, list, nxt, out)
  end
end

-- Move up to n waiters of slot list to out, in wake order, each a holder of the slot
-- (holder ZSET key) until 'till': the room is the waiter's while it travels to a
-- worker, whose admit finds it holding the slot, so no room is given twice.
local function take_holders(waiting, list, n, out, key, till)
  local first = #out
  take_waiters(waiting, list, n, out)
  for i = first + 1, #out do redis.call('ZADD', key, till, out[i]) end
end
