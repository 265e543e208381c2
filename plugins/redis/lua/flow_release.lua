-- flow_release: give slots back, then take out the oldest waiters of each slot with room;
-- a slot left with neither holders nor waiters has its limit forgotten.
-- KEYS[1] -> <f>slots; KEYS[2] -> <f>waiting
-- KEYS[3..2+m] -> <f>slot:<name> of each of the m slots; KEYS[3+m..2+2m] -> <f>wait:<name>
-- ARGV[1] -> now; ARGV[2] -> m; ARGV[3..2+m] -> the slot names
-- ARGV[3+m..] -> pairs: the slot's number (1..m), a task id holding it
-- Returns: the ids taken out of waiter lists.

local m = tonumber(ARGV[2])
for i = 3 + m, #ARGV, 2 do
  redis.call('ZREM', KEYS[2 + tonumber(ARGV[i])], ARGV[i + 1])
end
local out = {}
for j = 1, m do
  local name, key, wkey = ARGV[2 + j], KEYS[2 + j], KEYS[2 + m + j]
  if redis.call('EXISTS', wkey) == 1 then
    take_waiters(KEYS[2], name, wkey, room(KEYS[1], name, key, ARGV[1]), out)
  end
  forget_idle(KEYS[1], name, key, wkey, ARGV[1])
end
return out
