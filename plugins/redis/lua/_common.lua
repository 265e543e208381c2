-- Shared by every store script: prepended to each one when the scripts are loaded.
--
-- Store key schema (one hash tag per shard, so every key of a script shares a slot):
--   <p>:{<shard>}:due       ZSET  SCHEDULED tasks, score run_at, member "<rank>:<id>"
--   <p>:{<shard>}:ready     ZSET  READY tasks, score lease_until (redispatch deadline)
--   <p>:{<shard>}:running   ZSET  RUNNING tasks, score lease_until
--   <p>:{<shard>}:finished  ZSET  SUCCEEDED and CANCELLED tasks, score finished_at
--   <p>:{<shard>}:dead      ZSET  DEAD tasks, score 0 (lexical order of ids)
--   <p>:{<shard>}:order     ZSET  every task, score 0 (lexical order of ids)
--   <p>:{<shard>}:counts    HASH  "<subject> <state>" -> count
--   <p>:{<shard>}:task:<id> HASH  one task: see FIELDS below
--   <p>:{<shard>}:idem:<k>  STRING "<id> <created_at>", expiring with its window
--   <p>:{<shard>}:fence:<n> STRING the newest fencing token seen under name n
-- Times travel as the caller's decimal strings and are stored unchanged, so they round
-- trip exactly; tonumber() is used only to compare them. Payloads, results and errors
-- are opaque JSON strings: Lua never decodes them (cjson would round big integers).

local FIELDS = {'t', 'p', 's', 'u', 'lo', 'lu', 'r', 'e', 'c', 'f', 'a', 'ra'}
local DUE, READY, RUNNING, FINISHED, DEAD, ORDER, COUNTS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local function record(key)
  return redis.call('HMGET', key, unpack(FIELDS))
end

local function push_record(out, key)
  local fields = record(key)
  for i = 1, #FIELDS do out[#out + 1] = fields[i] end
end

local function push_none(out)
  for _ = 1, #FIELDS do out[#out + 1] = false end
end

local function count(subject, from, to)
  if from then
    local field = subject .. ' ' .. from
    if redis.call('HINCRBY', COUNTS, field, -1) <= 0 then redis.call('HDEL', COUNTS, field) end
  end
  if to then redis.call('HINCRBY', COUNTS, subject .. ' ' .. to, 1) end
end

local function due_member(key, id)
  return redis.call('HGET', key, 'rk') .. ':' .. id
end

local function unindex(key, id, state)
  if state == 'SCHEDULED' then redis.call('ZREM', DUE, due_member(key, id))
  elseif state == 'READY' then redis.call('ZREM', READY, id)
  elseif state == 'RUNNING' then redis.call('ZREM', RUNNING, id)
  elseif state == 'SUCCEEDED' or state == 'CANCELLED' then redis.call('ZREM', FINISHED, id)
  elseif state == 'DEAD' then redis.call('ZREM', DEAD, id) end
end

local function append(errors, item)
  if not errors or errors == '' or errors == '[]' then return '[' .. item .. ']' end
  return string.sub(errors, 1, -2) .. ',' .. item .. ']'
end

-- Raise FENCED unless token (a decimal string, '' for none) is at least the newest seen.
local function check_fence(key, token)
  if token == '' then return end
  local seen = redis.call('GET', key)
  if seen and tonumber(token) < tonumber(seen) then
    error({err = 'FENCED ' .. seen})
  end
  if not seen or tonumber(token) > tonumber(seen) then redis.call('SET', key, token) end
end
