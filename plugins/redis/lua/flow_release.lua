-- flow_release: give slots back, then take out, in wake order, as many waiters of each
-- slot as it has room, each a holder of the slot until the reserve runs out (its room is
-- its own while it travels to a worker); a slot left with neither holders nor waiters
-- has its limit forgotten.
-- KEYS[1] -> <f>slots; KEYS[2] -> <f>waiting; KEYS[3] -> <f> (the lists' keys are built
--            from it, see _flow.lua)
-- KEYS[4..3+m] -> <f>slot:<name> of each of the m slots
-- ARGV[1] -> now; ARGV[2] -> until (now + reserve) for the waiters taken out; ARGV[3] -> m
-- ARGV[4..3+m] -> the slot names
-- ARGV[4+m..] -> pairs: the slot's number (1..m), a task id holding it
-- Returns: the ids taken out of waiter lists.

local SLOTS, WAITING, BASE, now, till = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]
local m = tonumber(ARGV[3])
for i = 4 + m, #ARGV, 2 do
  redis.call('ZREM', KEYS[3 + tonumber(ARGV[i])], ARGV[i + 1])
end
local out = {}
for j = 1, m do
  local list, key = wait_list(BASE, ARGV[3 + j]), KEYS[3 + j]
  if redis.call('EXISTS', list.members) == 1 then
    take_holders(WAITING, list, room(SLOTS, list.name, key, now), out, key, till)
  end
  forget_idle(SLOTS, list.name, key, list.members, now)
end
return out
