-- Shared by the maintenance and admin store scripts (after _common.lua): reading whole
-- records, due-index members, and fencing.

-- A record in a reply: the task id, then these fields (envelope, payload, state,
-- updated_at, lease owner, lease_until, result, errors, cancel requested, finished_at,
-- attempt, run_at, subject, rank).
local FIELDS = {'t', 'p', 's', 'u', 'lo', 'lu', 'r', 'e', 'c', 'f', 'a', 'ra', 'sub', 'rk'}

local function record(key)
  return redis.call('HMGET', key, unpack(FIELDS))
end

local function push_record(out, key, id)
  local fields = record(key)
  out[#out + 1] = id
  for i = 1, #FIELDS do out[#out + 1] = fields[i] end
end

-- Push a task to publish: its id and the fields t, p, a, ra, sub, rk as read (f).
local function push_task(out, id, f)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, f[1], f[2], f[3]
  out[n + 5], out[n + 6], out[n + 7] = f[4], f[5], f[6]
end

local function push_none(out)
  for _ = 0, #FIELDS do out[#out + 1] = false end
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

-- Raise FENCED unless token (a decimal string, '' for none) is at least the newest seen.
local function check_fence(key, token)
  if token == '' then return end
  local seen = redis.call('GET', key)
  if seen and tonumber(token) < tonumber(seen) then
    error({err = 'FENCED ' .. seen})
  end
  if not seen or tonumber(token) > tonumber(seen) then redis.call('SET', key, token) end
end
