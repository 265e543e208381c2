-- stream_reclaim: move deliveries whose lease ran out (idle at least the lease) to this
-- consumer, oldest first, with how often each was delivered. XPENDING's IDLE filter scans
-- the whole pending-entries list, so an expired entry behind many live ones is found.
-- KEYS[1] -> <p>:{<shard>}:stream:<subject>
-- ARGV[1] -> group; ARGV[2] -> consumer; ARGV[3] -> lease (min idle) in ms;
-- ARGV[4] -> most entries to take
-- Returns: flat triples: entry id, the task id it names ('' for none), deliveries (this
-- one included).

local expired = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local out = {}
for _, item in ipairs(expired) do
  local id = item[1]
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
  local entry = claimed[1]
  if entry then
    out[#out + 1] = id; out[#out + 1] = entry_task(entry[2]); out[#out + 1] = item[4] + 1
  end
end
return out
