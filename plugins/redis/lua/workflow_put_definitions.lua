-- workflow_put_definitions: store workflow definitions, all or none; a version stored
-- already must have the same JSON (a version never changes).
-- KEYS[1] -> <p>:{<shard>}:workflows            ZSET  every workflow name, score 0
-- KEYS[1+i] -> <p>:{<shard>}:workflow:<name>    HASH  version -> definition JSON
-- ARGV[1+3(i-1)..] -> name, version, JSON of definition i
-- Returns: {1, flag_1, ..., flag_n} when written, flag 1 where created, 0 where the same
-- JSON was stored already; else {0, i, stored JSON} for the first definition (1-based)
-- stored with other JSON, and nothing was written.

local n = #ARGV / 3
for i = 1, n do
  local stored = redis.call('HGET', KEYS[1 + i], ARGV[3 * i - 1])
  if stored and stored ~= ARGV[3 * i] then return {0, i, stored} end
end
local out = {1}
for i = 1, n do
  out[#out + 1] = redis.call('HSETNX', KEYS[1 + i], ARGV[3 * i - 1], ARGV[3 * i])
  redis.call('ZADD', KEYS[1], 0, ARGV[3 * i - 2])
end
return out
