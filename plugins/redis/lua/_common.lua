-- Shared by every store script: prepended to each one when the scripts are loaded
-- (``_LIBRARIES`` in _connection.py). Every script call runs these definitions again, so
-- what only the maintenance and admin scripts use lives in _admin.lua.
--
-- Key schema: one hash tag per shard, so every key of a shard (store and transport)
-- shares a Redis Cluster slot and one script may touch a task and its stream.
--   <p>:{<shard>}:due       ZSET  SCHEDULED tasks, score run_at, member "<rank>:<id>"
--   <p>:{<shard>}:ready     ZSET  READY tasks, score lease_until (redispatch deadline)
--   <p>:{<shard>}:running   ZSET  RUNNING tasks, score lease_until
--   <p>:{<shard>}:finished  ZSET  SUCCEEDED and CANCELLED tasks, score finished_at
--   <p>:{<shard>}:dead      ZSET  DEAD tasks, score 0 (lexical order of ids)
--   <p>:{<shard>}:order     ZSET  every task, score 0 (lexical order of ids)
--   <p>:{<shard>}:counts    HASH  "<subject> <state>" -> count
--   <p>:{<shard>}:activity  ZSET  the start of each activity bucket kept, as score and member
--   <p>:{<shard>}:activity:<start>  HASH  "<subject> <state>" -> attempts that ended so in
--                                 the minute from <start> (atp.core.ports.Activity),
--                                 expiring ACTIVITY_TTL seconds after its first write
--   <p>:{<shard>}:task:<id> HASH  one task: the FIELDS of _admin.lua, plus 'cn' (the
--                                 nonce of the create call) and 'm' (max_attempts, if set).
--                                 't' is the envelope without what has a field of its own
--                                 (id, subject, run_at, attempt, priority) or the payload,
--                                 so small tasks stay in Redis's compact listpack encoding
--   <p>:{<shard>}:idempotency:<subject>:<k>  STRING "<id> <created_at> <run_at>",
--                                 expiring with its window (a key is scoped by subject)
--   <p>:{<shard>}:idem:<k>  STRING "<id> <created_at>": a key written before ADR 0028,
--                                 read (never written) until its window closes
--   <p>:{<shard>}:fence:<n> STRING the newest fencing token seen under name n
--   <p>:{<shard>}:stream:<subject>  STREAM the id of each published READY task (field i)
--   <p>:{<shard>}:dead:<subject>    STREAM terminated entries: i, reason, group, id, at
--   <p>:{<shard>}:subjects          SET    every subject ever published to in the shard
--   <p>:{<shard>}:flow:...          flow control (ADR 0038): rules, pauses, version, slots,
--                                 buckets, windows and waiter lists; see _flow.lua
-- Scripts that learn task ids from a stream (fetch_claim) get the task key prefix
-- "<p>:{<shard>}:task:" in KEYS and append the id: the tag keeps the key in the slot.
-- Times travel as the caller's decimal strings and are stored unchanged, so they round
-- trip exactly; tonumber() is used only to compare them. Payloads, results and errors
-- are opaque JSON strings: Lua never decodes them (cjson would round big integers).

local DUE, READY, RUNNING, FINISHED, DEAD, ORDER, COUNTS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

-- Counters and index writes are gathered and applied once per call by commit(): one
-- HINCRBY per (subject, state) and one ZADD or ZREM per index, not one per task.
-- ended: activity bucket start -> "<subject> <state>" -> attempts that ended so.
local deltas, adds, removes, ended = {}, {}, {}, {}

-- The same numbers as atp.core.ports: ACTIVITY_BUCKET, and ACTIVITY_KEPT plus two
-- buckets (test_redis_activity_lua pins them together).
local ACTIVITY_BUCKET = 60
local ACTIVITY_TTL = 7320
local FINAL = {SUCCEEDED = true, DEAD = true, CANCELLED = true}

-- One task of subject moved from state from to state to (nil: created, or deleted) in
-- a write at time at (the caller's decimal string). A move that ends an attempt (into
-- a final state, or RUNNING -> SCHEDULED, a retry) is counted in at's activity bucket:
-- every caller that can end one passes at, and one that does not fails loudly here.
local function count(subject, from, to, at)
  if from then
    local field = subject .. ' ' .. from
    deltas[field] = (deltas[field] or 0) - 1
  end
  if to then
    local field = subject .. ' ' .. to
    deltas[field] = (deltas[field] or 0) + 1
    if from ~= to and (FINAL[to] or (to == 'SCHEDULED' and from == 'RUNNING')) then
      local start = math.floor(tonumber(at) / ACTIVITY_BUCKET) * ACTIVITY_BUCKET
      local bucket = ended[start]
      if not bucket then bucket = {}; ended[start] = bucket end
      bucket[field] = (bucket[field] or 0) + 1
    end
  end
end

-- Deferred index writes, for members a call touches once per index: commit applies
-- the removals before the additions.
local function add_later(index, score, member)
  local items = adds[index]
  if not items then items = {}; adds[index] = items end
  items[#items + 1] = score; items[#items + 1] = member
end

local function remove_later(index, member)
  local items = removes[index]
  if not items then items = {}; removes[index] = items end
  items[#items + 1] = member
end

-- Run "command key [extra] item..." over items, at most 4000 items per call (unpack's
-- stack limit is 8000).
local function call_chunked(command, key, items, extra)
  for first = 1, #items, 4000 do
    local last = math.min(first + 3999, #items)
    if extra then redis.call(command, key, extra, unpack(items, first, last))
    else redis.call(command, key, unpack(items, first, last)) end
  end
end

-- Add the attempts gathered in ended to their buckets. A bucket's key is named after
-- the counts key (same prefix, same hash tag). A field's first write (HINCRBY returns
-- just its delta) may be the key's: then the index learns of the bucket, and the key
-- gets its expiry, if ZADD NX finds the bucket new. Later writes are one HINCRBY.
local function commit_activity()
  local index = string.sub(COUNTS, 1, -#'counts' - 1) .. 'activity'
  for start, fields in pairs(ended) do
    local member = string.format('%d', start)
    local key = index .. ':' .. member
    local fresh = false
    for field, n in pairs(fields) do
      if redis.call('HINCRBY', key, field, n) == n then fresh = true end
    end
    if fresh and redis.call('ZADD', index, 'NX', start, member) == 1 then
      redis.call('EXPIRE', key, ACTIVITY_TTL)
    end
  end
end

local function commit(out)
  for index, items in pairs(removes) do call_chunked('ZREM', index, items) end
  for index, items in pairs(adds) do call_chunked('ZADD', index, items) end
  for field, delta in pairs(deltas) do
    if delta ~= 0 and redis.call('HINCRBY', COUNTS, field, delta) <= 0 then
      redis.call('HDEL', COUNTS, field)
    end
  end
  if next(ended) then commit_activity() end
  return out
end

-- The errors a task keeps: its first and its newest ERROR_HISTORY - 1. The same number
-- as atp.core.model.ERROR_HISTORY (test_redis_error_history_lua pins the two together).
local ERROR_HISTORY = 21
local ENTRY = '{"attempt":'

-- Where each entry of an error history starts. Every entry is an object whose first key
-- is "attempt" (codec.error_to_dict, recover.lua), and ENTRY cannot occur inside a JSON
-- string: a quote there is escaped, and a string's closing quote is never followed by
-- "attempt". So the entries are found without decoding the JSON.
local function entry_starts(errors)
  local starts, at = {}, 1
  while true do
    at = string.find(errors, ENTRY, at, true)
    if not at then return starts end
    starts[#starts + 1] = at
    at = at + #ENTRY
  end
end

-- The error history with item appended: past ERROR_HISTORY entries it keeps the first
-- and the newest, so one cut also shortens a history stored before the bound.
local function append(errors, item)
  if not errors or errors == '' or errors == '[]' then return '[' .. item .. ']' end
  local starts = entry_starts(errors)
  local n = #starts
  if n < ERROR_HISTORY then return string.sub(errors, 1, -2) .. ',' .. item .. ']' end
  local head = string.sub(errors, 1, starts[2] - 1) -- '[' first entry ','
  return head .. string.sub(errors, starts[n - ERROR_HISTORY + 3], -2) .. ',' .. item .. ']'
end

-- Split packed on "\n" into n fields (8 or 9), the last one taking the rest (it may
-- hold anything): one string.match costs half a loop of find and sub.
local SPLITS = {
  [8] = '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$',
  [9] = '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$',
}
local function split(packed, n)
  return {string.match(packed, SPLITS[n])}
end
