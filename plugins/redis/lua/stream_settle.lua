-- stream_settle: set the idle time of deliveries this consumer still holds, without
-- counting a delivery: 0 restarts the lease (keep_alive); the lease minus a delay makes
-- the entry reclaimable after that delay (nack, close). Entries another consumer took
-- over meanwhile are left alone.
-- KEYS[1] -> <p>:{<shard>}:stream:<subject>
-- ARGV[1] -> group; ARGV[2] -> consumer; ARGV[3] -> idle time to set, in ms; ARGV[4..] -> ids
-- Returns: the number of entries settled.

local settled = 0
for i = 4, #ARGV do
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if info[1] and info[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    settled = settled + 1
  end
end
return settled
