-- stream_publish: append task ids to their subjects' streams in one call, and note the
-- subjects in the shard's registry.
-- KEYS[1] -> <p>:{<shard>}:subjects; KEYS[2..1+m] -> <p>:{<shard>}:stream:<subject> of
--            each of the m subjects
-- ARGV[1..m] -> the subjects, in the order of their stream keys;
-- ARGV[m+1..] -> per task, two values: its stream index (1..m) and its id
-- Returns: the number of entries added.

local m = #KEYS - 1
for i = m + 1, #ARGV - 1, 2 do
  redis.call('XADD', KEYS[1 + tonumber(ARGV[i])], '*', 'i', ARGV[i + 1])
end
redis.call('SADD', KEYS[1], unpack(ARGV, 1, m))
return (#ARGV - m) / 2
