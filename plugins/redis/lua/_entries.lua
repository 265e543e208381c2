-- Claiming what a consumer took from its streams: shared by fetch_claim and claim_entries,
-- whose KEYS hold, from index base, each stream j and its dead-letter stream in pairs.

local UNKNOWN = 'unknown task id: not in the task store'
local NOT_A_TASK = 'not a task id'

-- What a claimed entry's reply holds beyond what the claimer knows already (state
-- RUNNING, its own lease, updated now; a claimable task has no result or finish time).
local CLAIMED = {'s', 'lu', 'a', 'sub', 't', 'p', 'ra', 'e', 'c', 'rk'}

-- Claim the task of each taken entry ({stream index, entry id, task id, deliveries, task
-- key}) for owner as claim does; ack the entries of tasks not claimable (a duplicate,
-- finished or cancelled), terminate those naming no stored task, and push each claimed
-- one to out: stream index, entry id, deliveries, task id, then its fields t, p, a, ra,
-- sub, rk, e, c.
local function claim_taken(taken, base, group, owner, now_text, until_, out)
  local now, acks = tonumber(now_text), {}
  for _, e in ipairs(taken) do
    local j, entry, id = e[1], e[2], e[3]
    local stream, dead = KEYS[base + 2 * j - 2], KEYS[base + 2 * j - 1]
    local flag, f = -2, nil
    if id ~= '' then flag, f = claim_task(e[5], id, owner, now, until_, now_text, CLAIMED) end
    if flag == 1 then
      local n = #out
      out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6] =
        j, entry, e[4], id, f[5], f[6]
      out[n + 7], out[n + 8], out[n + 9], out[n + 10], out[n + 11], out[n + 12] =
        f[3], f[7], f[4], f[10], f[8], f[9]
    elseif flag == 0 then
      local list = acks[j]
      if not list then list = {}; acks[j] = list end
      list[#list + 1] = entry
    else
      local reason = flag == -1 and UNKNOWN or NOT_A_TASK
      terminate_entry(stream, dead, group, entry, id, reason, now_text)
    end
  end
  for j, entries in pairs(acks) do call_chunked('XACK', KEYS[base + 2 * j - 2], entries, group) end
end
