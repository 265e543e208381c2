-- workflow_get_definitions: read definitions from one snapshot (writes nothing).
-- KEYS[i] -> <p>:{<shard>}:workflow:<name>  HASH  version -> definition JSON
-- ARGV[i] -> the version wanted from KEYS[i], '' for the highest stored
-- Returns: per key, the definition JSON, or false where there is none.

local out = {}
for i = 1, #KEYS do
  local version = ARGV[i]
  if version == '' then
    version = false
    for _, stored in ipairs(redis.call('HKEYS', KEYS[i])) do
      if not version or tonumber(stored) > tonumber(version) then version = stored end
    end
  end
  out[i] = version and redis.call('HGET', KEYS[i], version) or false
end
return out
