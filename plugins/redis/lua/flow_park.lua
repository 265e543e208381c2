-- flow_park: add tasks to waiter lists, then take out the oldest waiters of each named
-- slot with room (a slot freed while a task was on its way to its list is not missed); a
-- slot left with neither holders nor waiters has its limit forgotten.
-- KEYS[1] -> <f>slots; KEYS[2] -> <f>waiting
-- KEYS[3..2+m] -> <f>wait:<name> of each of the m lists; KEYS[3+m..2+2m] -> <f>slot:<name>
--                (a pause list names no slot: its slot key is never touched)
-- ARGV[1] -> now; ARGV[2] -> m; ARGV[3..2+m] -> the list names
-- ARGV[3+m..] -> pairs: the list's number (1..m), a task id
-- Returns: the ids taken out of waiter lists.

local m = tonumber(ARGV[2])
for i = 3 + m, #ARGV, 2 do
  local j = tonumber(ARGV[i])
  if redis.call('ZADD', KEYS[2 + j], 'NX', 0, ARGV[i + 1]) == 1 then
    redis.call('SADD', KEYS[2], ARGV[2 + j])
  end
end
local out = {}
for j = 1, m do
  local name, wkey, key = ARGV[2 + j], KEYS[2 + j], KEYS[2 + m + j]
  take_waiters(KEYS[2], name, wkey, room(KEYS[1], name, key, ARGV[1]), out)
  forget_idle(KEYS[1], name, key, wkey, ARGV[1])
end
return out
