-- activity_trim: forget the oldest activity buckets, those that ended more than
-- ACTIVITY_KEPT ago (the store's prune). A bucket's key has usually expired already
-- (_common.lua gives it a TTL); this keeps the index bounded and deletes a key that
-- somehow outlived its TTL.
-- KEYS[1] -> <p>:{<shard>}:activity; a bucket's key is that name, ':' and its start
-- ARGV[1] -> the latest bucket start to forget (inclusive); ARGV[2] -> at most this many
-- Returns: the number of buckets forgotten.

local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for i = 1, #old do
  redis.call('DEL', KEYS[1] .. ':' .. old[i])
  redis.call('ZREM', KEYS[1], old[i])
end
return #old
