-- Shared by the scripts that end stream entries or read their task ids.

local DEAD_LETTERS = 10000 -- the newest copies a dead-letter stream keeps

-- Ack an entry for good and keep a copy in the dead-letter stream with the reason, once:
-- an entry no longer pending in group is left alone.
-- Returns: 1 if the entry was terminated, else 0.
local function terminate_entry(stream, dead, group, entry_id, task_id, reason, now)
  if redis.call('XACK', stream, group, entry_id) == 0 then return 0 end
  redis.call('XADD', dead, 'MAXLEN', '~', DEAD_LETTERS, '*', 'i', task_id, 'reason', reason,
    'group', group, 'id', entry_id, 'at', now)
  return 1
end

-- The task id an entry's fields name (field i; the id of an envelope in field t, as
-- written before ids, ADR 0023), or '' if they name none.
local function entry_task(fields)
  local legacy
  for j = 1, #fields, 2 do
    if fields[j] == 'i' then return fields[j + 1] end
    if fields[j] == 't' then legacy = fields[j + 1] end
  end
  if legacy then
    local ok, envelope = pcall(cjson.decode, legacy)
    if ok and type(envelope) == 'table' and type(envelope.id) == 'string' then
      return envelope.id
    end
  end
  return ''
end
