-- flow_unpark: take up to a limit of waiters out of the named lists, oldest (lowest id)
-- first across the lists; a slot's list left empty, with no holder, has its limit forgotten.
-- KEYS[1] -> <f>waiting; KEYS[2] -> <f>slots
-- KEYS[3..2+m] -> <f>wait:<name> of each list; KEYS[3+m..2+2m] -> <f>slot:<name>
-- ARGV[1] -> limit; ARGV[2..1+m] -> the list names
-- Returns: the ids taken out.

local limit, m = tonumber(ARGV[1]), #ARGV - 1
local found = {}
for j = 1, m do
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2 + j], 0, limit - 1)) do
    found[#found + 1] = {id = id, list = j}
  end
end
table.sort(found, function(a, b) return before(a.id, b.id) end)
local out = {}
for i = 1, math.min(limit, #found) do
  local row = found[i]
  redis.call('ZREM', KEYS[2 + row.list], row.id)
  out[#out + 1] = row.id
end
for j = 1, m do
  local name, wkey = ARGV[1 + j], KEYS[2 + j]
  if redis.call('EXISTS', wkey) == 0 then redis.call('SREM', KEYS[1], name) end
  forget_idle(KEYS[2], name, KEYS[2 + m + j], wkey, nil)
end
return out
