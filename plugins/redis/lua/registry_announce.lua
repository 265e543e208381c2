-- registry_announce: list members until ttl from the server's now, replacing namesakes;
-- members already expired are forgotten first.
-- KEYS[1] -> <p>:{members}:expiry  ZSET name -> expires_at in ms
-- KEYS[2] -> <p>:{members}:data    HASH name -> JSON
-- ARGV[1] -> ttl in milliseconds; ARGV[2], ARGV[3], ... -> name, JSON, name, JSON, ...
-- Returns: the members' expires_at in milliseconds of server time.

local now = registry_now_ms()
registry_prune(now)
local expires = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return expires
