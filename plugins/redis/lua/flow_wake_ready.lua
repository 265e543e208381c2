-- flow_wake_ready: for every slot with waiters and room, take out that many of its
-- waiters in wake order, at most a limit in all (the scheduler's sweep), each a holder
-- of the slot until the reserve runs out; the slot whose next waiter has the lowest rank
-- (then id) goes first. Then one step of a walk over <f>slots (HSCAN, its cursor kept
-- in <f>gc) forgets the limits of slots with neither live holders (a reserved waiter is
-- one) nor waiters, such as one whose holder died: the hash does not grow with the keys.
-- KEYS[1] -> <f>slots; KEYS[2] -> <f>waiting; KEYS[3] -> <f> (the flow key prefix: the
--            lists are found in the registry, and their keys built from it keep the tag)
-- KEYS[4] -> <f>gc
-- ARGV[1] -> now; ARGV[2] -> limit; ARGV[3] -> how many slots one step of the walk asks for
-- ARGV[4] -> until (now + reserve) for the waiters taken out
-- Returns: the ids taken out of waiter lists.

local SLOTS, WAITING, BASE, now, till = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[4]
local left = tonumber(ARGV[2])
local ready = {}
for _, name in ipairs(redis.call('SMEMBERS', WAITING)) do
  local key = BASE .. 'slot:' .. name
  local free = room(SLOTS, name, key, now)
  if free > 0 then
    local list = wait_list(BASE, name)
    local head = peek(list)
    if head then
      ready[#ready + 1] = {list = list, key = key, room = free, head = head}
    end
  end
end
table.sort(ready, function(a, b) return sooner(a.head, b.head) end)
local out = {}
for _, slot in ipairs(ready) do
  if left <= 0 then break end
  local taken = #out
  take_holders(WAITING, slot.list, math.min(slot.room, left), out, slot.key, till)
  left = left - (#out - taken)
  forget_idle(SLOTS, slot.list.name, slot.key, slot.list.members, now)
end

local step = redis.call('HSCAN', SLOTS, redis.call('GET', KEYS[4]) or '0', 'COUNT', ARGV[3])
local fields = step[2]
for i = 1, #fields, 2 do
  local name = fields[i]
  forget_idle(SLOTS, name, BASE .. 'slot:' .. name, BASE .. 'members:' .. name, now)
end
if step[1] == '0' then redis.call('DEL', KEYS[4]) else redis.call('SET', KEYS[4], step[1]) end
return out
