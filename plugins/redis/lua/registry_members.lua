-- registry_members: forget the expired members, then return the rest.
-- KEYS[1] -> <p>:{members}:expiry  ZSET name -> expires_at in ms
-- KEYS[2] -> <p>:{members}:data    HASH name -> JSON
-- Returns: a flat list JSON, expires_at in ms, JSON, ... in order of expiry (a member
-- without JSON, which no script leaves, is skipped).

registry_prune(registry_now_ms())
local listed = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local found = {}
for i = 1, #listed, 2 do
  local data = redis.call('HGET', KEYS[2], listed[i])
  if data then
    found[#found + 1] = data
    found[#found + 1] = listed[i + 1]
  end
end
return found
