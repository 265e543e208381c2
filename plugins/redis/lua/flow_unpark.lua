-- flow_unpark: take up to a limit of waiters out of the named lists, each list in its
-- wake order, the lists merged by their next waiter's rank (then id), so the most
-- overdue comes first; a slot's list left empty, with no holder, has its limit forgotten.
-- KEYS[1] -> <f>waiting; KEYS[2] -> <f>slots; KEYS[3] -> <f> (the lists' keys are built
--            from it, see _flow.lua)
-- KEYS[4..3+m] -> <f>slot:<name> of each list
-- ARGV[1] -> limit; ARGV[2..1+m] -> the list names
-- Returns: the ids taken out.

local WAITING, SLOTS, BASE = KEYS[1], KEYS[2], KEYS[3]
local limit, m = tonumber(ARGV[1]), #ARGV - 1
local lists, heads = {}, {}
for j = 1, m do
  lists[j] = wait_list(BASE, ARGV[1 + j])
  heads[j] = peek(lists[j])
end
local out = {}
while #out < limit do
  local best = nil
  for j = 1, m do
    if heads[j] and (not best or sooner(heads[j], heads[best])) then best = j end
  end
  if not best then break end
  take_next(WAITING, lists[best], heads[best], out)
  heads[best] = peek(lists[best])
end
for j = 1, m do
  forget_idle(SLOTS, lists[j].name, KEYS[3 + j], lists[j].members, nil)
end
return out
