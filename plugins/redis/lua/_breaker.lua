-- Shared by the circuit-breaker scripts (ADR 0040): the arithmetic of
-- atp.core.flow.breaker, line for line, and the breaker's hash. Prepended to each
-- breaker script (``_LIBRARIES`` in _connection.py).
--
-- Key schema: in the store shard's hash tag, beside the flow keys (<f> is
-- "<p>:{<shard>}:flow:"):
--   <f>breaker:<k>  HASH   breaker k (core.flow.breaker.BreakerState): c (circuit), ws
--                          (window_start), ok, f (failed), pok, pf (the previous window's),
--                          ou (open_until), pr (probe), pu (probe_until), at (changed_at),
--                          cb (changed_by)
--   <f>breakers     ZSET   every breaker kept -> when it comes to rest (rest_at; +inf for
--                          one not closed)
-- A closed breaker that counted nothing in its last two windows is at rest: it reads as
-- one never written, as in every ledger (core.flow.breaker.rest_at), and the scripts
-- forget it, so the keys do not grow with subjects gone quiet.
-- Times travel as decimal strings; what Lua computes goes back as "%.17g", which a
-- double survives exactly.

local CLOSED, OPEN, HALF_OPEN = 'closed', 'open', 'half-open'
local FIELDS = {'c', 'ws', 'ok', 'f', 'pok', 'pf', 'ou', 'pr', 'pu', 'at', 'cb'}
local TEXT = {c = true, pr = true, cb = true} -- the fields that are not numbers

local function fmt(x)
  return string.format('%.17g', x)
end

local function new_state(window_start)
  return {c = CLOSED, ws = window_start, ok = 0, f = 0, pok = 0, pf = 0, ou = 0, pr = '',
    pu = 0, at = 0, cb = ''}
end

-- breaker.rest_at: when closed state s comes to rest (one not closed never
-- does: nil), by a policy of window seconds; one with nothing counted is at rest already.
local function rest_at(s, window)
  if s.c ~= CLOSED then return nil end
  if s.ok > 0 or s.f > 0 then return s.ws + 2 * window end
  if s.pok > 0 or s.pf > 0 then return s.ws + window end
  return -math.huge
end

-- The breaker in hash as a call at now sees it: one never written, or at rest by a
-- policy of window seconds, is new.
local function load(hash, window, now)
  local raw = redis.call('HMGET', hash, unpack(FIELDS))
  if not raw[1] then return new_state(0) end
  local s = {c = raw[1], ws = tonumber(raw[2]), ok = tonumber(raw[3]), f = tonumber(raw[4]),
    pok = tonumber(raw[5]), pf = tonumber(raw[6]), ou = tonumber(raw[7]), pr = raw[8],
    pu = tonumber(raw[9]), at = tonumber(raw[10]), cb = raw[11]}
  local rest = rest_at(s, window)
  if rest and now >= rest then return new_state(0) end
  return s
end

-- Keep state s of breaker name in hash, with its rest time in the index; forget it if it
-- is at rest already.
local function keep(index, hash, name, s, window, now)
  local rest = rest_at(s, window)
  if rest and rest <= now then
    redis.call('DEL', hash)
    redis.call('ZREM', index, name)
    return
  end
  redis.call('HSET', hash, 'c', s.c, 'ws', fmt(s.ws), 'ok', fmt(s.ok), 'f', fmt(s.f),
    'pok', fmt(s.pok), 'pf', fmt(s.pf), 'ou', fmt(s.ou), 'pr', s.pr, 'pu', fmt(s.pu),
    'at', fmt(s.at), 'cb', s.cb)
  redis.call('ZADD', index, rest and fmt(rest) or '+inf', name)
end

-- State s as the scripts reply it: the hash's fields, in FIELDS' order.
local function reply(out, s)
  for _, field in ipairs(FIELDS) do
    if TEXT[field] then out[#out + 1] = s[field] else out[#out + 1] = fmt(s[field]) end
  end
end

-- Forget up to step breakers at rest by now.
local function forget_rested(index, base, now, step)
  local names = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, step)
  for _, name in ipairs(names) do redis.call('DEL', base .. 'breaker:' .. name) end
  if #names > 0 then redis.call('ZREM', index, unpack(names)) end
end

-- breaker._start
local function start_of(window, now)
  return math.floor(now / window) * window
end

-- breaker._opened
local function opened(window, open_for, now, by)
  local s = new_state(start_of(window, now))
  s.c, s.ou, s.at, s.cb = OPEN, now + open_for, now, by
  return s
end

-- breaker._rolled, in place.
local function roll(s, window, now)
  local start = start_of(window, now)
  if start <= s.ws then return end
  if start - s.ws <= window then
    s.pok, s.pf = s.ok, s.f
  else
    s.pok, s.pf = 0, 0
  end
  s.ws, s.ok, s.f = start, 0, 0
end

-- breaker._weighted: (outcomes, failures) in the sliding window ending at now.
local function weighted(s, window, now)
  local elapsed = now - s.ws
  if elapsed >= 2 * window then return 0.0, 0.0 end
  if elapsed >= window then -- the current fixed window is over: it is the previous one now
    local share = 1.0 - (elapsed - window) / window
    return (s.ok + s.f) * share, s.f * share
  end
  local share = 1.0 - math.max(elapsed, 0.0) / window
  return s.ok + s.f + (s.pok + s.pf) * share, s.f + s.pf * share
end

-- breaker.observe; p is the policy: ratio, window, min_volume, open_for.
local function observe(s, p, ok, failed, now, by)
  if s.c == OPEN then return s end
  if s.c == HALF_OPEN then
    if failed > 0 then return opened(p.window, p.open_for, now, by) end
    if ok > 0 then
      local closed = new_state(start_of(p.window, now))
      closed.at, closed.cb = now, by
      return closed
    end
    return s
  end
  roll(s, p.window, now)
  s.ok, s.f = s.ok + ok, s.f + failed
  local total, bad = weighted(s, p.window, now)
  if total >= p.min_volume and bad >= p.ratio * total then
    return opened(p.window, p.open_for, now, by)
  end
  return s
end

-- breaker.probe, in place.
local function probe(s, task_id, now, till, by)
  if s.c == CLOSED then return s end
  if s.c == OPEN then
    if now < s.ou then return s end
    s.c, s.pr, s.pu, s.at, s.cb = HALF_OPEN, task_id, till, now, by
    return s
  end
  if s.pr == task_id or s.pu <= now then s.pr, s.pu = task_id, till end
  return s
end
