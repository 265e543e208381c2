-- lease_acquire: take a named lease if it is free, expired or already ours.
-- KEYS[1] -> <p>:{lease:<name>}:holder  STRING "<token> <owner>", expiring with the lease
-- KEYS[2] -> <p>:{lease:<name>}:token   STRING the last token handed out (never expires)
-- ARGV[1] -> owner; ARGV[2] -> ttl in milliseconds
-- Returns: the token, or false when another owner holds the lease. The token grows on
-- every change of holder and stays when the holder takes its own lease again.

local held = redis.call('GET', KEYS[1])
local token
if held then
  local sep = string.find(held, ' ', 1, true)
  if string.sub(held, sep + 1) ~= ARGV[1] then return false end
  token = string.sub(held, 1, sep - 1)
else
  token = tostring(redis.call('INCR', KEYS[2]))
end
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return token
