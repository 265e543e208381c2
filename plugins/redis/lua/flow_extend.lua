-- flow_extend: move the until of the slots tasks hold; a slot not held is not taken.
-- KEYS[1..n] -> <f>slot:<name> of each (slot, task) pair
-- ARGV[1] -> until; ARGV[2..n+1] -> the task id of each pair
-- Returns: how many holds moved.

local moved = 0
for i = 2, #ARGV do
  moved = moved + redis.call('ZADD', KEYS[i - 1], 'XX', 'CH', ARGV[1], ARGV[i])
end
return moved
