-- The end of one attempt, shared by finish and finish_ack.

-- Apply one outcome (the fields of a packed outcome, see finish.lua) to the task under
-- key: a compare-and-set on RUNNING and the lease owner.
-- Returns: true if applied; false if the lease was lost (nothing changed).
local function finish_task(key, o)
  local id, owner, state, at = o[1], o[2], o[3], o[4]
  local f = redis.call('HMGET', key, 's', 'lo', 'a', 'sub', 'e', 'rk')
  if f[1] ~= 'RUNNING' or f[2] ~= owner then return false end
  remove_later(RUNNING, id)
  -- A SUCCEEDED task keeps its owner, the worker that ran it; its state says no lease.
  if state == 'SUCCEEDED' then redis.call('HDEL', key, 'lu')
  else redis.call('HDEL', key, 'lo', 'lu') end
  local set = {'s', state, 'u', at}
  if o[7] ~= '' then set[#set + 1] = 'e'; set[#set + 1] = append(f[5], o[7]) end
  if o[6] == '1' then
    set[#set + 1] = 'a'; set[#set + 1] = tostring(math.max(tonumber(f[3]) - 1, 0))
  end
  if state == 'SCHEDULED' then
    local run_at = o[5]
    if run_at == '' then run_at = at end
    set[#set + 1] = 'ra'; set[#set + 1] = run_at
    add_later(DUE, run_at, f[6] .. ':' .. id)
  else
    set[#set + 1] = 'f'; set[#set + 1] = at
    if state == 'SUCCEEDED' then set[#set + 1] = 'r'; set[#set + 1] = o[8] end
    if state == 'DEAD' then add_later(DEAD, 0, id) else add_later(FINISHED, at, id) end
  end
  redis.call('HSET', key, unpack(set))
  count(f[4], 'RUNNING', state, at)
  return true
end
