-- create_publish: create tasks as create does and, in the same atomic step, add the id
-- of each task created READY to its subject's stream (the transport's publish), noting
-- the subject in the shard's registry. Duplicates are neither created nor published.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8] -> <p>:{<shard>}:subjects
-- KEYS[9..8+m] -> <p>:{<shard>}:stream:<subject> of each of the batch's m subjects
-- KEYS[9+m..8+m+n] -> the task key of each of the n tasks
-- KEYS[9+m+n..] -> two per task with an idempotency key, as for create
-- ARGV[1..5] -> as create: now, idempotency window (s), ready_until, key TTL (ms), nonce
-- ARGV[6] -> m; ARGV[7..6+m] -> the subjects, in the order of their stream keys
-- ARGV[7+m..] -> one per task, packed as for create
-- Returns: as create: per task its id, 1 if created, else 0, and its run_at; then the
--          (number, replaced id) pairs of debounced tasks.

local m = tonumber(ARGV[6])
local streams = {}
for j = 1, m do streams[ARGV[6 + j]] = KEYS[8 + j] end
local out, published = create_tasks(9 + m, 7 + m, streams)
-- SADD only the subjects the registry lacks: a read costs less than a write, which is
-- propagated (AOF, replicas) even when it changes nothing.
local subjects = {}
for subject in pairs(published) do
  if redis.call('SISMEMBER', KEYS[8], subject) == 0 then subjects[#subjects + 1] = subject end
end
if #subjects > 0 then call_chunked('SADD', KEYS[8], subjects) end
return commit(out)
