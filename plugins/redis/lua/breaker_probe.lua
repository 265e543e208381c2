-- breaker_probe: apply each task's request to run to its breaker (core.flow.breaker.probe),
-- in order, and keep the result: an open breaker whose time is up turns half-open with
-- the task as its probe, a half-open one whose probe's claim ran out takes the task
-- instead, a closed one stays as it is; one at rest reads as new, and is forgotten. First
-- up to a step of other breakers at rest are forgotten (see _breaker.lua).
-- KEYS[1] -> <f>breakers; KEYS[2] -> <f> (the keys of breakers at rest are built from it)
-- KEYS[3..2+n] -> <f>breaker:<k> of each of the n requests
-- ARGV[1] -> now; ARGV[2] -> how many breakers at rest one call may forget
-- ARGV[3..] -> per request: the breaker's key k, its policy's window, the task id, until
--              (the end of the probe's claim), by (the asking worker)
-- Returns: per request, the state after it (_breaker.lua's reply: FIELDS' order).

local INDEX, BASE = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
forget_rested(INDEX, BASE, ARGV[1], ARGV[2])
local out = {}
for i = 3, #ARGV, 5 do
  local hash, name, window = KEYS[3 + (i - 3) / 5], ARGV[i], tonumber(ARGV[i + 1])
  local s = load(hash, window, now)
  s = probe(s, ARGV[i + 2], now, tonumber(ARGV[i + 3]), ARGV[i + 4])
  keep(INDEX, hash, name, s, window, now)
  reply(out, s)
end
return out
