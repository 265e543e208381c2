-- flow_rules: write or read the flow rules; every write makes the version grow.
-- KEYS[1] -> <f>rules; KEYS[2] -> <f>pauses; KEYS[3] -> <f>version
-- ARGV[1] -> the operation:
--   'put'    ARGV[2..] -> pairs: limit name, limit JSON
--   'remove' ARGV[2..] -> limit names
--   'pause', 'resume'   ARGV[2..] -> subject patterns
--   'get'    (nothing)
-- Returns: 'put': the version. 'remove', 'pause', 'resume': per name or pattern, 1 if it
--          changed anything, else 0. 'get': the version, the number of limits, then the
--          limit JSONs, then the paused patterns.

local RULES, PAUSES, VERSION = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]

if op == 'get' then
  local out = {tonumber(redis.call('GET', VERSION) or '0')}
  local limits = redis.call('HVALS', RULES)
  out[2] = #limits
  for _, json in ipairs(limits) do out[#out + 1] = json end
  for _, pattern in ipairs(redis.call('SMEMBERS', PAUSES)) do out[#out + 1] = pattern end
  return out
end

local out = {}
if op == 'put' then
  for i = 2, #ARGV, 2 do redis.call('HSET', RULES, ARGV[i], ARGV[i + 1]) end
  return redis.call('INCR', VERSION)
elseif op == 'remove' then
  for i = 2, #ARGV do out[#out + 1] = redis.call('HDEL', RULES, ARGV[i]) end
elseif op == 'pause' then
  for i = 2, #ARGV do out[#out + 1] = redis.call('SADD', PAUSES, ARGV[i]) end
elseif op == 'resume' then
  for i = 2, #ARGV do out[#out + 1] = redis.call('SREM', PAUSES, ARGV[i]) end
else
  error('flow_rules: unknown operation ' .. op)
end
redis.call('INCR', VERSION)
return out
