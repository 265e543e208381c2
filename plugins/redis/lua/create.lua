-- create: store new tasks in one atomic step, honouring idempotency keys.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8..7+n] -> the task key of each of the n tasks
-- KEYS[8+n..] -> two per task with an idempotency key, in task order: the key scoped by
--               its subject, then the unscoped key of before ADR 0028
-- ARGV[1] -> now; ARGV[2] -> idempotency window (s); ARGV[3] -> ready_until or '';
-- ARGV[4] -> key TTL (ms); ARGV[5] -> nonce of this call (a retried call finds its own
--            tasks and reports them created)
-- ARGV[6..] -> one per task, fields joined by "\n": id, subject, rank, run_at, attempt,
--              max_attempts or '', envelope JSON, payload JSON, idempotency key or ''
--              (last, so it may hold anything; JSON here never holds a raw newline).
--              A keyed task with a dedup mode (ADR 0038) has "<max_attempts>:<m><period>"
--              for max_attempts: m is t (throttle), d (debounce) or u (unique, no period)
-- A task due by now is created READY when ready_until is given, else SCHEDULED.
-- Returns: per task, its id (or the existing task's), 1 if created, else 0, and its
--          run_at (or the existing task's); then, for each debounced task that replaced a
--          pending one, its number in the batch (1..n) and the id of the task cancelled.

local out = create_tasks(8, 6, nil)
return commit(out)
