-- schedule_advance: record what the leader fired, each a compare-and-set on revision.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8] -> <p>:{<shard>}:schedules (active, score next_tick); KEYS[9] -> fence key;
-- KEYS[10..] -> <p>:{<shard>}:schedule:<name>
-- ARGV[1] -> fencing token; ARGV[2+4i..] -> name, revision read, JSON as advanced,
--            next_tick
-- Returns: per advance, 1 applied, 0 not (changed or removed meanwhile).
-- Errors: "FENCED <newest>" when the token is older than one seen before.

check_fence(KEYS[9], ARGV[1])
local out = {}
for i = 0, (#ARGV - 1) / 4 - 1 do
  local a, key = 1 + 4 * i, KEYS[10 + i]
  local name, revision = ARGV[a + 1], ARGV[a + 2]
  local f = redis.call('HMGET', key, 'rev', 'paused')
  if f[1] and f[1] == revision then
    redis.call('HSET', key, 'j', ARGV[a + 3], 'rev', tostring(tonumber(revision) + 1),
      'nt', ARGV[a + 4])
    if f[2] ~= '1' then redis.call('ZADD', KEYS[8], ARGV[a + 4], name) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
