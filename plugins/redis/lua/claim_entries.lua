-- claim_entries: claim the tasks of entries a consumer has just read with a blocking
-- read, as fetch_claim does with what it reads itself: an entry of a task not
-- claimable is acked, one naming no stored task is terminated.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8..7+2m] -> each stream and its dead-letter stream, in pairs
-- KEYS[8+2m..] -> the task key of each entry that names a task, in entry order
-- ARGV[1] -> group; ARGV[2] -> owner; ARGV[3] -> now; ARGV[4] -> lease_until;
-- ARGV[5] -> m; ARGV[6..] -> per entry, three values: its stream index (1..m), its id,
--            the task id it names ('' for none)
-- Returns: as fetch_claim: {entries, {}, {per claimed entry: stream index, entry id,
-- deliveries (1), task id, then its fields t, p, a, ra, sub, rk, e, c}}.

local next_key = 8 + 2 * tonumber(ARGV[5])
local taken = {}
for a = 6, #ARGV - 2, 3 do
  local id, key = ARGV[a + 2], false
  if id ~= '' then key = KEYS[next_key]; next_key = next_key + 1 end
  taken[#taken + 1] = {tonumber(ARGV[a]), ARGV[a + 1], id, 1, key}
end
local out = {}
claim_taken(taken, 8, ARGV[1], ARGV[2], ARGV[3], ARGV[4], out)
return commit({#taken, {}, out})
