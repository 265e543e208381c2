-- finish: record how attempts ended, each a compare-and-set on RUNNING and the owner.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts
-- KEYS[8..] -> task key of each outcome
-- ARGV[i] -> one per outcome, fields joined by "\n": id, owner, state (SUCCEEDED |
--            SCHEDULED | DEAD | CANCELLED), at, run_at or '', refund 1|0, error JSON or
--            '', result JSON or '' (last; JSON here never holds a raw newline)
-- Returns: per outcome, 1 applied, 0 not (the lease was lost; nothing changed).

local out = {}
for i = 1, #ARGV do
  out[i] = finish_task(KEYS[7 + i], split(ARGV[i], 8)) and 1 or 0
end
return commit(out)
