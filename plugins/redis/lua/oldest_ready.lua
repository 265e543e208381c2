-- oldest_ready: the earliest run_at per subject among READY tasks, for the metrics
-- (ADR 0044). The caller read the candidates just before: the ready index's first ids,
-- earliest stamp first. A candidate no longer READY is skipped. Reads only.
-- KEYS[1..n] -> task key of each candidate
-- Returns: subject, run_at (as stored), for each subject found, in the order first seen.

local oldest, order = {}, {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 's', 'sub', 'ra')
  if f[1] == 'READY' then
    local seen = oldest[f[2]]
    if not seen then
      order[#order + 1] = f[2]
      oldest[f[2]] = f[3]
    elseif tonumber(f[3]) < tonumber(seen) then
      oldest[f[2]] = f[3]
    end
  end
end
local out = {}
for _, subject in ipairs(order) do
  out[#out + 1] = subject
  out[#out + 1] = oldest[subject]
end
return out
