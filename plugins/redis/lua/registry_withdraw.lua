-- registry_withdraw: remove members by name; unknown names are ignored.
-- KEYS[1] -> <p>:{members}:expiry  ZSET name -> expires_at in ms
-- KEYS[2] -> <p>:{members}:data    HASH name -> JSON
-- ARGV[1], ARGV[2], ... -> the names
-- Returns: how many members were listed.

local removed = 0
for i = 1, #ARGV, 1000 do
  local names = {unpack(ARGV, i, math.min(i + 999, #ARGV))}
  removed = removed + redis.call('ZREM', KEYS[1], unpack(names))
  redis.call('HDEL', KEYS[2], unpack(names))
end
return removed
