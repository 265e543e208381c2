-- stream_reclaim: move deliveries whose lease ran out (idle at least the lease) to this
-- consumer, oldest first, with how often each was delivered. XPENDING's IDLE filter scans
-- the whole pending-entries list, so an expired entry behind many live ones is found.
-- KEYS[1] -> <p>:{<subject>}:stream
-- ARGV[1] -> group; ARGV[2] -> consumer; ARGV[3] -> lease (min idle) in ms;
-- ARGV[4] -> most entries to take
-- Returns: flat triples: entry id, envelope JSON, deliveries (this one included).

local expired = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local out = {}
for _, item in ipairs(expired) do
  local id = item[1]
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
  local entry = claimed[1]
  if entry then
    local envelope
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 't' then envelope = fields[j + 1] end
    end
    if envelope then
      out[#out + 1] = id; out[#out + 1] = envelope; out[#out + 1] = item[4] + 1
    end
  end
end
return out
