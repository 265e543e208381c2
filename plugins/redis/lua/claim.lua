-- claim: lease tasks to one owner: READY (or RUNNING with an expired lease) -> RUNNING,
-- attempt + 1. Per item.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each id
-- ARGV[1] -> owner; ARGV[2] -> now; ARGV[3] -> lease_until; ARGV[4..] -> task ids
-- Returns: per id, a flag (1 claimed, 0 not claimed, -1 unknown id) and the record after
-- the call (the id and the FIELDS of _admin.lua; false for an unknown id).

local READ = {'s', 'lu', 'a', 'sub', 't', 'p', 'u', 'lo', 'r', 'e', 'c', 'f', 'ra', 'rk'}
local owner, now, until_ = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do
  local flag, f = claim_task(KEYS[i + 4], ARGV[i], owner, now, until_, ARGV[2], READ)
  if flag == 1 then f[7], f[8] = ARGV[2], owner end
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6], out[n + 7] =
    flag, ARGV[i], f[5], f[6], f[1], f[7], f[8]
  out[n + 8], out[n + 9], out[n + 10], out[n + 11], out[n + 12], out[n + 13] =
    f[2], f[9], f[10], f[11], f[12], f[3]
  out[n + 14], out[n + 15], out[n + 16] = f[13], f[4], f[14]
end
return commit(out)
