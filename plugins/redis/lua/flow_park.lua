-- flow_park: add tasks to waiter lists (a task there already keeps its place, with its new
-- group, weight and rank), then take out, in wake order, as many waiters of each named
-- slot as it has room (a slot freed while a task was on its way to its list is not
-- missed), each a holder of the slot until the reserve runs out; a slot left with
-- neither holders nor waiters has its limit forgotten.
-- KEYS[1] -> <f>slots; KEYS[2] -> <f>waiting; KEYS[3] -> <f> (the lists' keys are built
--            from it, see _flow.lua)
-- KEYS[4..3+m] -> <f>slot:<name> of each of the m lists (a pause list names no slot: its
--                slot key is never touched)
-- ARGV[1] -> now; ARGV[2] -> until (now + reserve) for the waiters taken out; ARGV[3] -> m
-- ARGV[4..3+m] -> the list names
-- ARGV[4+m..] -> per task: the list's number (1..m), task id, group, weight, rank
-- Returns: the ids taken out of waiter lists.

local SLOTS, WAITING, BASE, now, till = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]
local m = tonumber(ARGV[3])
local lists = {}
for j = 1, m do lists[j] = wait_list(BASE, ARGV[3 + j]) end
for i = 4 + m, #ARGV, 5 do
  add_waiter(WAITING, lists[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4])
end
local out = {}
for j = 1, m do
  local list, key = lists[j], KEYS[3 + j]
  take_holders(WAITING, list, room(SLOTS, list.name, key, now), out, key, till)
  forget_idle(SLOTS, list.name, key, list.members, now)
end
return out
