-- The claim of one task, shared by claim, fetch_claim and claim_entries.

-- Lease the task under key to owner until until_ (a decimal string) if it is READY, or
-- RUNNING with a lease that ended by now: it becomes RUNNING with attempt + 1.
-- fields are the hash fields to read, starting with 's', 'lu', 'a', 'sub'.
-- Returns: 1 claimed, 0 not claimed, -1 unknown key; and the values of fields (after
-- the call for the first three; all false for an unknown key).
local function claim_task(key, id, owner, now, until_, now_text, fields)
  local f = redis.call('HMGET', key, unpack(fields))
  local state = f[1]
  if not state then return -1, f end
  if state ~= 'READY' and not (state == 'RUNNING' and tonumber(f[2] or '0') <= now) then
    return 0, f
  end
  local attempt = tostring(tonumber(f[3]) + 1)
  redis.call('HSET', key, 's', 'RUNNING', 'a', attempt, 'lo', owner, 'lu', until_, 'u', now_text)
  if state == 'READY' then
    remove_later(READY, id)
    count(f[4], 'READY', 'RUNNING')
  end
  add_later(RUNNING, until_, id)
  f[1], f[2], f[3] = 'RUNNING', until_, attempt
  return 1, f
end
