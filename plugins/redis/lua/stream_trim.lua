-- stream_trim: drop the entries every consumer group has delivered and acked. An entry
-- still pending somewhere, or not yet read by some group, is never trimmed; a stream
-- without groups keeps everything for the first group to come.
-- KEYS[1] -> <p>:{<shard>}:stream:<subject>
-- Returns: the number of entries trimmed.

local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local floor
local function lower(a, b)
  if not a then return b end
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  if #ams ~= #bms then return #ams < #bms and a or b end
  if ams ~= bms then return ams < bms and a or b end
  return tonumber(aseq) <= tonumber(bseq) and a or b
end
for _, group in ipairs(groups) do
  local name, last
  for j = 1, #group, 2 do
    if group[j] == 'name' then name = group[j + 1] end
    if group[j] == 'last-delivered-id' then last = group[j + 1] end
  end
  local pending = redis.call('XPENDING', KEYS[1], name)
  if pending[1] > 0 then floor = lower(floor, pending[2]) end
  -- MINID keeps ids >= floor: the first undelivered entry is above last, so trim at
  -- last + 1 by keeping last's successor, approximated by keeping last itself.
  floor = lower(floor, last)
end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
