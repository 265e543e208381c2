-- breaker_observe: apply each sample of outcomes to its breaker (core.flow.breaker.observe),
-- in order, and keep the result (a breaker named twice sees the first sample's result);
-- one at rest reads as new, and is forgotten. First up to a step of other breakers at
-- rest are forgotten (see _breaker.lua).
-- KEYS[1] -> <f>breakers; KEYS[2] -> <f> (the keys of breakers at rest are built from it)
-- KEYS[3..2+n] -> <f>breaker:<k> of each of the n samples
-- ARGV[1] -> now; ARGV[2] -> how many breakers at rest one call may forget
-- ARGV[3..] -> per sample: the breaker's key k, ok, failed, its policy (ratio, window,
--              min_volume, open_for), and by (the reporting worker)
-- Returns: per sample, the state after it (_breaker.lua's reply: FIELDS' order).

local INDEX, BASE = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
forget_rested(INDEX, BASE, ARGV[1], ARGV[2])
local out = {}
for i = 3, #ARGV, 8 do
  local hash, name = KEYS[3 + (i - 3) / 8], ARGV[i]
  local policy = {ratio = tonumber(ARGV[i + 3]), window = tonumber(ARGV[i + 4]),
    min_volume = tonumber(ARGV[i + 5]), open_for = tonumber(ARGV[i + 6])}
  local s = observe(load(hash, policy.window, now), policy, tonumber(ARGV[i + 1]),
    tonumber(ARGV[i + 2]), now, ARGV[i + 7])
  keep(INDEX, hash, name, s, policy.window, now)
  reply(out, s)
end
return out
