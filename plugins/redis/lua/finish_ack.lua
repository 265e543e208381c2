-- finish_ack: record how attempts ended as finish does and, in the same step, ack the
-- stream entry of each outcome applied. An entry whose outcome was not applied (the
-- lease was lost) stays pending for the task's new holder.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8..7+m] -> the m streams <p>:{<shard>}:stream:<subject> the entries are in
-- KEYS[8+m..] -> task key of each outcome
-- ARGV[1] -> group; ARGV[2] -> m;
-- ARGV[3..] -> per outcome, three values: its entry's stream index (1..m), the entry
--              id, and the outcome packed as for finish
-- Returns: per outcome, 1 applied (and its entry acked), 0 not (nothing changed).

local group, m = ARGV[1], tonumber(ARGV[2])
local out, acks = {}, {}
for i = 1, (#ARGV - 2) / 3 do
  local a = 3 * i
  if finish_task(KEYS[7 + m + i], split(ARGV[a + 2], 8)) then
    local j = tonumber(ARGV[a])
    local list = acks[j]
    if not list then list = {}; acks[j] = list end
    list[#list + 1] = ARGV[a + 1]
    out[i] = 1
  else
    out[i] = 0
  end
end
for j, entries in pairs(acks) do call_chunked('XACK', KEYS[7 + j], entries, group) end
return commit(out)
