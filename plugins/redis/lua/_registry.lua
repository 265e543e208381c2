-- _registry: what the registry scripts share. The registry's clock is the server's TIME,
-- so workers whose clocks disagree still agree on who has expired.
-- KEYS[1] -> <p>:{members}:expiry  ZSET name -> expires_at in ms (server time)
-- KEYS[2] -> <p>:{members}:data    HASH name -> the member's JSON (atp.core.registry)

local function registry_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Forget the members whose expiry is at or before now_ms, from both keys.
local function registry_prune(now_ms)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  for i = 1, #gone, 1000 do
    redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 999, #gone)))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms) end
end
