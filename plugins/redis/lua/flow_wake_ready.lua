-- flow_wake_ready: for every slot with waiters and room, take out that many of its oldest
-- waiters, at most a limit in all (the scheduler's sweep); the slot whose oldest waiter
-- is oldest (lowest id) goes first. Then one step of a walk over <f>slots (HSCAN, its
-- cursor kept in <f>gc) forgets the limits of slots with neither live holders nor
-- waiters, such as one whose holder died: the hash does not grow with the keys.
-- KEYS[1] -> <f>slots; KEYS[2] -> <f>waiting; KEYS[3] -> <f> (the flow key prefix: the
--            lists are found in the registry, and their keys built from it keep the tag)
-- KEYS[4] -> <f>gc
-- ARGV[1] -> now; ARGV[2] -> limit; ARGV[3] -> how many slots one step of the walk asks for
-- Returns: the ids taken out of waiter lists.

local SLOTS, BASE, now = KEYS[1], KEYS[3], ARGV[1]
local left = tonumber(ARGV[2])
local lists = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local oldest = redis.call('ZRANGE', BASE .. 'wait:' .. name, 0, 0)[1]
  if oldest then lists[#lists + 1] = {name = name, oldest = oldest} end
end
table.sort(lists, function(a, b) return before(a.oldest, b.oldest) end)
local out = {}
for _, list in ipairs(lists) do
  if left <= 0 then break end
  local name = list.name
  local wkey, key = BASE .. 'wait:' .. name, BASE .. 'slot:' .. name
  local taken = #out
  take_waiters(KEYS[2], name, wkey, math.min(room(SLOTS, name, key, now), left), out)
  left = left - (#out - taken)
  forget_idle(SLOTS, name, key, wkey, now)
end

local step = redis.call('HSCAN', SLOTS, redis.call('GET', KEYS[4]) or '0', 'COUNT', ARGV[3])
local fields = step[2]
for i = 1, #fields, 2 do
  local name = fields[i]
  forget_idle(SLOTS, name, BASE .. 'slot:' .. name, BASE .. 'wait:' .. name, now)
end
if step[1] == '0' then redis.call('DEL', KEYS[4]) else redis.call('SET', KEYS[4], step[1]) end
return out
