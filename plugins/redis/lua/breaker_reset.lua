-- breaker_reset: close each breaker and clear its counts: it is forgotten, and reads as
-- one never written. First up to a step of breakers at rest are forgotten (see
-- _breaker.lua).
-- KEYS[1] -> <f>breakers; KEYS[2] -> <f> (the keys of breakers at rest are built from it)
-- KEYS[3..2+n] -> <f>breaker:<k> of each of the n breakers
-- ARGV[1] -> now; ARGV[2] -> how many breakers at rest one call may forget
-- ARGV[3..2+n] -> the breakers' keys k
-- Returns: per breaker, 1 if it was not closed (a key named twice: closed the second
--          time), else 0.

local INDEX, BASE = KEYS[1], KEYS[2]
forget_rested(INDEX, BASE, ARGV[1], ARGV[2])
local out = {}
for i = 3, #ARGV do
  local circuit = redis.call('HGET', KEYS[i], 'c')
  if circuit and circuit ~= CLOSED then out[#out + 1] = 1 else out[#out + 1] = 0 end
  redis.call('DEL', KEYS[i])
  redis.call('ZREM', INDEX, ARGV[i])
end
return out
